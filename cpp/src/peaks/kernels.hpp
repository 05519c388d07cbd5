#pragma once
// Per-ISA kernels of peakfinder8 (internal; reached only through dispatch in peakfinder8.cpp).
// A "ring group" block holds kLanes radial bins side by side: element i of lane l is the i-th
// unmasked pixel of that bin in row-major order, padded with NaN (never inside a threshold).
// Each lane is summed strictly in order, so every ISA reproduces psana's float sums bit for bit.
// Like the calibration kernels these files instantiate no standard-library templates.
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace lclstream::peaks::detail {

inline constexpr std::size_t kLanes = 32;
inline constexpr int kIterations = 5;  // psana's sigma-clipping passes

/// psana's compute_radial_stats for one bin (internal linkage: each ISA file keeps its own copy).
static inline void radial_stats_lane(float sum, float sumsq, int count, float min_snr, float adc_thresh,
                                     float& roffset, float& rthreshold, float& lthreshold) {
  if (count == 0) {
    roffset = 0.0f;
    rthreshold = FLT_MAX;
    lthreshold = FLT_MIN;
    return;
  }
  const float offset = sum / static_cast<float>(count);
  float sigma = sumsq / static_cast<float>(count) - (offset * offset);
  if (sigma >= 0) sigma = std::sqrt(sigma);
  roffset = offset;
  rthreshold = offset + min_snr * sigma;
  lthreshold = offset - min_snr * sigma;
  if (rthreshold < adc_thresh) rthreshold = adc_thresh;
}

/// Sigma clipping over one block of `len` rows (len * kLanes floats at `blk`, pixel indices at
/// `idx`): writes each lane's final offset and upper threshold, and appends to `seeds` (capacity
/// len * kLanes) the pixel index of every value above its lane's final threshold. Returns how
/// many seeds were appended (lane-interleaved order; the caller orders them).
#define LCLS_PEAKS_KERNELS                                                                          \
  std::size_t ring_group(const float* blk, const std::int32_t* idx, std::size_t len, float min_snr,  \
                         float adc_thresh, float* roffset, float* rthreshold, std::int32_t* seeds);  \
  /* blk[i] = frame[idx[i]] (NaN where idx[i] < 0), n elements. */                                  \
  void gather_f32(const float* frame, const std::int32_t* idx, std::size_t n, float* blk);

namespace scalar {
LCLS_PEAKS_KERNELS
}
namespace avx512 {
LCLS_PEAKS_KERNELS
}

}  // namespace lclstream::peaks::detail
