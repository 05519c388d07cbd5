// Portable peakfinder8 kernels: the reference for the per-ISA ones (same lanes, same order).
#include <limits>

#include "kernels.hpp"

namespace lclstream::peaks::detail::scalar {

std::size_t ring_block(const float* bucket, const std::int32_t* pos, const std::int32_t* idx, std::size_t len,
                       float min_snr, float adc_thresh, float* blk, float* roffset, float* rthreshold,
                       std::int32_t* seeds, const float*, const float*) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (std::size_t i = 0; i < len * kLanes; ++i) blk[i] = pos[i] >= 0 ? bucket[pos[i]] : nan;
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
    bool same = true;
    for (std::size_t l = 0; l < kLanes; ++l) {
      const float h = hi[l], w = lo[l];
      radial_stats_lane(s[l], q[l], c[l], min_snr, adc_thresh, roffset[l], hi[l], lo[l]);
      same = same && h == hi[l] && w == lo[l];
    }
    if (same) break;
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

namespace {
template <class T>
void copy_runs(const T* frame, const Run* runs, std::size_t nruns, float* bucket) {
  for (std::size_t r = 0; r < nruns; ++r) {
    const T* src = frame + runs[r].src;
    float* dst = bucket + runs[r].dst;
    for (std::uint32_t j = 0; j < runs[r].len; ++j) dst[j] = static_cast<float>(src[j]);
  }
}

template <class T>
std::size_t histogram(const T* frame, const std::uint16_t* bin16, std::size_t npix, std::uint32_t* hist, std::size_t nbins,
                      std::uint32_t min_candidate, std::uint32_t* candidates, std::uint32_t* over, std::size_t* n_over) {
  std::size_t n = 0, no = 0;
  for (std::size_t i = 0; i < npix; ++i) {
    const T v = frame[i];
    if (v == 0 || bin16[i] == kNoBin) continue;
    if (v >= min_candidate) candidates[n++] = static_cast<std::uint32_t>(i);
    if (v < kHistValues) {
      ++hist[std::size_t{v} * nbins + bin16[i]];
    } else {
      over[no++] = static_cast<std::uint32_t>(i);
    }
  }
  *n_over = no;
  return n;
}
}  // namespace

std::size_t histogram_u16(const std::uint16_t* frame, const std::uint16_t* bin16, std::size_t npix, std::uint32_t* hist, std::size_t nbins,
                          std::uint32_t min_candidate, std::uint32_t* candidates, std::uint32_t* over, std::size_t* n_over) {
  return histogram(frame, bin16, npix, hist, nbins, min_candidate, candidates, over, n_over);
}
std::size_t histogram_u32(const std::uint32_t* frame, const std::uint16_t* bin16, std::size_t npix, std::uint32_t* hist, std::size_t nbins,
                          std::uint32_t min_candidate, std::uint32_t* candidates, std::uint32_t* over, std::size_t* n_over) {
  return histogram(frame, bin16, npix, hist, nbins, min_candidate, candidates, over, n_over);
}

void copy_runs_f32(const float* frame, const Run* runs, std::size_t nruns, float* bucket) {
  copy_runs(frame, runs, nruns, bucket);
}
void copy_runs_u16(const std::uint16_t* frame, const Run* runs, std::size_t nruns, float* bucket) {
  copy_runs(frame, runs, nruns, bucket);
}
void copy_runs_u32(const std::uint32_t* frame, const Run* runs, std::size_t nruns, float* bucket) {
  copy_runs(frame, runs, nruns, bucket);
}

}  // namespace lclstream::peaks::detail::scalar
