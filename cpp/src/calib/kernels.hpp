#pragma once
// Per-ISA calibration kernels over one contiguous run of pixels (internal; reached only
// through dispatch in calib.cpp). Every ISA produces the bits of scalar::pixel().
#include <cstddef>
#include <cstdint>

#include <emmintrin.h>

namespace lclstream::calib::detail {

/// Constants for a run of pixels: pointers already offset to the first pixel.
struct Tables {
  const float* poff[3];
  const float* gfac[3];
  std::uint8_t stage_of_code[4];  // stage per raw >> 14; 3 = invalid
  std::uint16_t data_mask;        // bits of raw that are ADC data
  std::uint16_t slow_bits;        // pixels with none of these bits set are stage 0
  float photon_energy;
};

#define LCLS_CALIB_KERNELS                                                                       \
  std::uint64_t calib_f32(const Tables& t, const std::uint16_t* raw, float* out, std::size_t n,   \
                          bool stream);                                                          \
  std::uint64_t calib_u16(const Tables& t, const std::uint16_t* raw, std::uint16_t* out,         \
                          std::size_t n, bool stream);                                           \
  std::uint64_t calib_u32(const Tables& t, const std::uint16_t* raw, std::uint32_t* out,         \
                          std::size_t n, bool stream);                                           \
  /* numpy's median of v[0..n), n > 0 (mean of the two middle values when n is even); may     \
     reorder v. Exact selection, so every ISA returns the same bits. */                        \
  float median_of(float* v, std::size_t n);

namespace scalar {
LCLS_CALIB_KERNELS
}
namespace avx2 {
LCLS_CALIB_KERNELS
}
namespace avx512 {
LCLS_CALIB_KERNELS
}
#undef LCLS_CALIB_KERNELS

// Internal linkage on purpose: each ISA's file gets its own copy, so the linker never hands
// the scalar path a copy compiled with AVX-512 enabled.
namespace {

constexpr float kLimitU16 = 65535.0F;
constexpr float kLimitU32 = 4294967296.0F;

/// The reference formula for one pixel (shared by the scalar kernel and the vector
/// kernels' head/tail/slow lanes). Sets `invalid` for invalid gain codes.
inline float pixel(const Tables& t, std::uint16_t raw, std::size_t i, std::uint64_t& invalid) {
  const unsigned s = t.stage_of_code[raw >> 14];
  if (s == 3) {
    ++invalid;
    return 0.0F;
  }
  const float d = static_cast<float>(raw & t.data_mask);
  return (d - t.poff[s][i]) * t.gfac[s][i];
}

/// Photon count of one calibrated value: max(0, rint(v / E)), saturating at max_count.
/// Branch-free (SSE2 is part of x86-64): max/min then cvtss2si, which rounds half to even
/// in the default rounding mode; NaN becomes 0 (maxss returns its second operand).
inline std::uint32_t photons_of(float kev, float photon_energy, float limit, std::uint32_t max_count) {
  __m128 v = _mm_set_ss(kev / photon_energy);
  v = _mm_min_ss(_mm_max_ss(v, _mm_setzero_ps()), _mm_set_ss(limit));
  const long long n = _mm_cvtss_si64(v);
  return n > static_cast<long long>(max_count) ? max_count : static_cast<std::uint32_t>(n);
}

}  // namespace

}  // namespace lclstream::calib::detail
