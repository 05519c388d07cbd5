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

float median_of(float* v, std::size_t n, float* /*scratch*/) {
  float* const mid = v + n / 2;
  std::nth_element(v, mid, v + n);
  const float hi = *mid;
  if (n % 2 != 0) return hi;
  return (*std::max_element(v, mid) + hi) / 2.0F;
}

std::size_t cm_gather(const Tables& t, const CmFlags& f, const std::uint16_t* raw, std::size_t n,
                      float threshold, float* x, std::uint8_t* stage, float* cand) {
  std::size_t nc = 0;
  for (std::size_t i = 0; i < n; ++i) cm_gather_one(t, f, raw[i], i, threshold, x, stage, cand, nc);
  return nc;
}

std::uint64_t cm_apply_f32(const Tables& t, const CmFlags& f, const float* x, const std::uint8_t* stage,
                           std::size_t n, float cm, float* out) {
  std::uint64_t invalid = 0;
  for (std::size_t i = 0; i < n; ++i) out[i] = cm_value_one(t, f, x, stage, i, cm, invalid);
  return invalid;
}

std::uint64_t cm_apply_u16(const Tables& t, const CmFlags& f, const float* x, const std::uint8_t* stage,
                           std::size_t n, float cm, std::uint16_t* out) {
  std::uint64_t invalid = 0;
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = static_cast<std::uint16_t>(
        photons_of(cm_value_one(t, f, x, stage, i, cm, invalid), t.photon_energy, kLimitU16, 0xffffU));
  }
  return invalid;
}

std::uint64_t cm_apply_u32(const Tables& t, const CmFlags& f, const float* x, const std::uint8_t* stage,
                           std::size_t n, float cm, std::uint32_t* out) {
  std::uint64_t invalid = 0;
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = photons_of(cm_value_one(t, f, x, stage, i, cm, invalid), t.photon_energy, kLimitU32, 0xffffffffU);
  }
  return invalid;
}

}  // namespace lclstream::calib::detail::scalar
