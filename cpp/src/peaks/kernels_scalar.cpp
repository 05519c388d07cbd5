// Portable peakfinder8 kernels: the reference for the per-ISA ones (same lanes, same order).
#include <limits>

#include "kernels.hpp"

namespace lclstream::peaks::detail::scalar {

std::size_t ring_group(const float* blk, const std::int32_t* idx, std::size_t len, float min_snr,
                       float adc_thresh, float* roffset, float* rthreshold, std::int32_t* seeds) {
  float hi[kLanes], lo[kLanes];
  for (std::size_t l = 0; l < kLanes; ++l) {
    hi[l] = 1e9f;
    lo[l] = -1e9f;
  }
  for (int it = 0; it < kIterations; ++it) {
    float s[kLanes] = {}, q[kLanes] = {};
    int c[kLanes] = {};
    for (std::size_t i = 0; i < len; ++i) {
      const float* row = blk + i * kLanes;
      for (std::size_t l = 0; l < kLanes; ++l) {
        const float v = row[l];
        const bool in = v < hi[l] && v > lo[l];
        // Adding +0.0f is exact here: a sum that starts at +0 is never -0.
        s[l] += in ? v : 0.0f;
        q[l] += in ? v * v : 0.0f;
        c[l] += in ? 1 : 0;
      }
    }
    for (std::size_t l = 0; l < kLanes; ++l) radial_stats_lane(s[l], q[l], c[l], min_snr, adc_thresh, roffset[l], hi[l], lo[l]);
  }
  std::size_t n = 0;
  for (std::size_t i = 0; i < len; ++i) {
    const float* row = blk + i * kLanes;
    for (std::size_t l = 0; l < kLanes; ++l) {
      if (row[l] > hi[l]) seeds[n++] = idx[i * kLanes + l];
    }
  }
  for (std::size_t l = 0; l < kLanes; ++l) rthreshold[l] = hi[l];
  return n;
}

void gather_f32(const float* frame, const std::int32_t* idx, std::size_t n, float* blk) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (std::size_t i = 0; i < n; ++i) blk[i] = idx[i] >= 0 ? frame[idx[i]] : nan;
}

}  // namespace lclstream::peaks::detail::scalar
