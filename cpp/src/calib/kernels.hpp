#pragma once
// Per-ISA calibration kernels over one contiguous run of pixels (internal; reached only
// through dispatch in calib.cpp). Every ISA produces the bits of scalar::pixel().
// The ISA files instantiate no standard-library templates (vector, algorithm): an inline
// function compiled there with AVX flags could be the copy the linker keeps for portable
// code too. Scratch memory comes from the caller.
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

/// Common-mode flags per stage (bit 0: takes the correction; bit 1: candidate), offset like Tables.
struct CmFlags {
  const std::uint8_t* flags[3];
};

#define LCLS_CALIB_KERNELS                                                                       \
  std::uint64_t calib_f32(const Tables& t, const std::uint16_t* raw, float* out, std::size_t n,   \
                          bool stream);                                                          \
  std::uint64_t calib_u16(const Tables& t, const std::uint16_t* raw, std::uint16_t* out,         \
                          std::size_t n, bool stream);                                           \
  std::uint64_t calib_u32(const Tables& t, const std::uint16_t* raw, std::uint32_t* out,         \
                          std::size_t n, bool stream);                                           \
  /* numpy's median of v[0..n), n > 0 (mean of the two middle values when n is even); may     \
     reorder v; scratch holds 2 * n + 32 floats. Exact selection, so every ISA returns the    \
     same bits. */                                                                             \
  float median_of(float* v, std::size_t n, float* scratch);                                                      \
  /* Common mode, pass A over n pixels of one bank row: x = data - poff (0 if invalid), the  \
     stage of each pixel, and the candidates (flag bit 1, x < threshold) appended in order to  \
     cand (16 floats of slack). Returns how many were appended. */                             \
  std::size_t cm_gather(const Tables& t, const CmFlags& f, const std::uint16_t* raw, std::size_t n, \
                        float threshold, float* x, std::uint8_t* stage, float* cand);         \
  /* Pass B: out = (x - cm where flag bit 0) * gfac, invalid -> 0 (counted). */                \
  std::uint64_t cm_apply_f32(const Tables& t, const CmFlags& f, const float* x,                \
                             const std::uint8_t* stage, std::size_t n, float cm, float* out);  \
  std::uint64_t cm_apply_u16(const Tables& t, const CmFlags& f, const float* x,                \
                             const std::uint8_t* stage, std::size_t n, float cm, std::uint16_t* out); \
  std::uint64_t cm_apply_u32(const Tables& t, const CmFlags& f, const float* x,                \
                             const std::uint8_t* stage, std::size_t n, float cm, std::uint32_t* out);

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

/// Common mode pass A for one pixel (shared by every ISA's scalar lanes).
inline void cm_gather_one(const Tables& t, const CmFlags& f, std::uint16_t w, std::size_t i, float threshold,
                          float* x, std::uint8_t* stage, float* cand, std::size_t& n) {
  const std::uint8_t s = t.stage_of_code[w >> 14];
  stage[i] = s;
  if (s == 3) {
    x[i] = 0.0F;
    return;
  }
  const float v = static_cast<float>(w & t.data_mask) - t.poff[s][i];
  x[i] = v;
  cand[n] = v;
  n += ((f.flags[s][i] & 2U) != 0) & (v < threshold);
}

/// Common mode pass B for one pixel: the calibrated value (0 for invalid, counted).
inline float cm_value_one(const Tables& t, const CmFlags& f, const float* x, const std::uint8_t* stage,
                          std::size_t i, float cm, std::uint64_t& invalid) {
  const std::uint8_t s = stage[i];
  if (s == 3) {
    ++invalid;
    return 0.0F;
  }
  const float v = (f.flags[s][i] & 1U) != 0 ? x[i] - cm : x[i];
  return v * t.gfac[s][i];
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
