// Scalar reference kernels: one pixel at a time, psana's formula.
#include <algorithm>

#include "calib/kernels.hpp"
#include "lclstream/calib.hpp"

namespace lclstream::calib::detail::scalar {

std::uint64_t calib_f32(const Tables& t, const std::uint16_t* raw, float* out, std::size_t n, bool) {
  std::uint64_t invalid = 0;
  for (std::size_t i = 0; i < n; ++i) out[i] = pixel(t, raw[i], i, invalid);
  return invalid;
}

std::uint64_t calib_u16(const Tables& t, const std::uint16_t* raw, std::uint16_t* out, std::size_t n,
                        bool) {
  std::uint64_t invalid = 0;
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = static_cast<std::uint16_t>(
        photons_of(pixel(t, raw[i], i, invalid), t.photon_energy, kLimitU16, 0xffffU));
  }
  return invalid;
}

std::uint64_t calib_u32(const Tables& t, const std::uint16_t* raw, std::uint32_t* out, std::size_t n,
                        bool) {
  std::uint64_t invalid = 0;
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = photons_of(pixel(t, raw[i], i, invalid), t.photon_energy, kLimitU32, 0xffffffffU);
  }
  return invalid;
}

float median_of(float* v, std::size_t n) {
  float* const mid = v + n / 2;
  std::nth_element(v, mid, v + n);
  const float hi = *mid;
  if (n % 2 != 0) return hi;
  return (*std::max_element(v, mid) + hi) / 2.0F;
}

}  // namespace lclstream::calib::detail::scalar
