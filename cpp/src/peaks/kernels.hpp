#pragma once
// Per-ISA kernels of peakfinder8 (internal; reached only through dispatch in peakfinder8.cpp).
// A "ring group" block holds kLanes radial bins side by side: lane l of the block holds the
// unmasked pixels of one bin in row-major order (psana's summation order), NaN in the gaps
// (never inside a threshold). Each lane is summed strictly in order, so every ISA reproduces
// psana's float sums bit for bit. Like the calibration kernels these files instantiate no
// standard-library templates.
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace lclstream::peaks::detail {

inline constexpr std::size_t kLanes = 32;
inline constexpr int kIterations = 5;  // psana's sigma-clipping passes

/// A stretch of consecutive frame pixels whose rings all belong to one block: `len` values from
/// frame[src] go to bucket[dst] (so each frame is read once, front to back).
struct Run {
  std::uint32_t src, len, dst;
};

/// Photon-count histograms: values 1 .. kHistValues-1 are counted per ring; larger ones are
/// listed. kNoBin marks a pixel outside every ring (masked, or its ring has no good pixel).
inline constexpr std::uint32_t kHistValues = 64;
inline constexpr std::uint16_t kNoBin = 0xFFFF;

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

/// One block of `len` rows: gathers blk[i] = bucket[pos[i]] (NaN where pos[i] < 0; len * kLanes
/// floats), runs psana's sigma clipping per lane, writes each lane's final offset and upper
/// threshold, and appends to `seeds` (capacity len * kLanes) the frame index (idx[i]) of every
/// value above its lane's final threshold. Returns how many seeds were appended, in block order
/// (the caller orders them). [ahead, ahead_end) is the block's bucket range, read roughly in step
/// with the rows, which the kernel may prefetch.
/// When a pass leaves every lane's thresholds where they were, the passes left would select the
/// same pixels and give the same bits again, so they are skipped.
#define LCLS_PEAKS_KERNELS                                                                                 \
  std::size_t ring_block(const float* bucket, const std::int32_t* pos, const std::int32_t* idx,            \
                         std::size_t len, float min_snr, float adc_thresh, float* blk, float* roffset,      \
                         float* rthreshold, std::int32_t* seeds, const float* ahead, const float* ahead_end); \
  /* bucket[r.dst + j] = float(frame[r.src + j]) for every run r and j < r.len. */                         \
  void copy_runs_f32(const float* frame, const Run* runs, std::size_t nruns, float* bucket);                \
  void copy_runs_u16(const std::uint16_t* frame, const Run* runs, std::size_t nruns, float* bucket);        \
  void copy_runs_u32(const std::uint32_t* frame, const Run* runs, std::size_t nruns, float* bucket);        \
  /* Every pixel i with bin16[i] != kNoBin and value v = frame[i] != 0 is counted in */                    \
  /* hist[bin16[i] * kHistValues + v] if v < kHistValues, else appended to over (*n_over of them), and */  \
  /* appended to candidates if v >= min_candidate (>= 1). Returns how many candidates there are (both */   \
  /* lists have room for every pixel; frame order). */                                                     \
  std::size_t histogram_u16(const std::uint16_t* frame, const std::uint16_t* bin16, std::size_t npix,      \
                            std::uint32_t* hist, std::size_t nbins, std::uint32_t min_candidate, std::uint32_t* candidates, std::uint32_t* over, std::size_t* n_over); \
  std::size_t histogram_u32(const std::uint32_t* frame, const std::uint16_t* bin16, std::size_t npix,      \
                            std::uint32_t* hist, std::size_t nbins, std::uint32_t min_candidate, std::uint32_t* candidates, std::uint32_t* over, std::size_t* n_over);

namespace scalar {
LCLS_PEAKS_KERNELS
}
namespace avx512 {
LCLS_PEAKS_KERNELS
}

}  // namespace lclstream::peaks::detail
