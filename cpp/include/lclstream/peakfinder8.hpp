#pragma once
// peakfinder8 (Cheetah / OM / psana): Bragg peaks as connected groups of pixels above a
// per-ring threshold. The results are the bits psana's `peakfinder_8` (OM's C++ source,
// psana/peakFinder/peakfinder8.cc) gives on the same image, mask and radius map: the same
// per-ring float sums in the same order, the same growth order, the same quirks (see
// docs/peaks.md). What differs is how the work is laid out:
//   * the geometry (radius bins, mask, layout) is prepared once per Peakfinder8, not per frame;
//   * each frame streams once into per-block buckets, and each block's pixels are gathered
//     from there into 32 neighbouring rings side by side (one SIMD lane per ring, in the
//     row-major order psana sums them); the sigma-clipping passes and the seed search run on
//     that cache-resident block, and stop early once a pass leaves the thresholds unchanged;
//   * photon counts (uint16/uint32) skip the transposition: per-ring value histograms give the
//     same float sums exactly while a ring's squared values sum below 2^24 (else its block takes
//     the general path);
//   * only the seeds found there are grown, in psana's scan order, with scratch that is
//     allocated once per thread and cleared incrementally.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace lclstream::peaks {

/// Parameters, named as OM's `peakfinder8_peak_detection` section names them.
struct Peakfinder8Params {
  int max_num_peaks = 2048;       ///< peaks kept per frame (later ones are dropped, as in psana)
  float adc_threshold = 0.0f;     ///< a ring's threshold never goes below this
  float minimum_snr = 5.0f;       ///< ring threshold = mean + minimum_snr * sigma; peak SNR cut
  int min_pixel_count = 2;        ///< fewest pixels in a peak
  int max_pixel_count = 20;       ///< most pixels in a peak (>= 1)
  int local_bg_radius = 3;        ///< local background from a disk of radius 2 * this
  float min_res = 0.0f;           ///< pixels with radius < min_res are masked (OM)
  float max_res = 1e30f;          ///< pixels with radius > max_res are masked (OM)
  int asic_nx = 0, asic_ny = 0;   ///< ASIC size: fast-scan (columns) and slow-scan (rows)
  int nasics_x = 0, nasics_y = 0; ///< ASICs along x (columns) and y (rows) of the frame
};

/// Peaks of many frames, flat (struct of arrays), event e owning [offsets[e], offsets[e+1]).
/// Fields in psana's order and meaning: x = fast scan (column), y = slow scan (row), total
/// intensity above the local background, closest pixel index, pixel count, brightest pixel above
/// the local background, local background sigma, signal-to-noise ratio.
struct PeakList {
  std::vector<std::uint64_t> offsets{0};
  std::vector<float> x, y, total_intensity, max_intensity, sigma, snr;
  std::vector<std::int32_t> npix;
  std::vector<std::int64_t> index;

  std::size_t events() const noexcept { return offsets.size() - 1; }
  std::size_t size() const noexcept { return x.size(); }
  void clear();
};

/// Element type of the frames (float32 keV/ADU, or photon counts).
enum class PeakInput { f32, u16, u32 };

class Peakfinder8 {
 public:
  /// `radius` (rows x cols, >= 0 and finite) is each pixel's distance from the beam in pixels;
  /// its radial bin is rint(radius). `mask` (0 = bad) may be empty (all good). rows/cols must be
  /// nasics_y * asic_ny and nasics_x * asic_nx. ValueError on any inconsistency.
  Peakfinder8(const Peakfinder8Params& params, std::size_t rows, std::size_t cols, std::span<const float> radius,
              std::span<const std::uint8_t> mask);
  ~Peakfinder8();
  Peakfinder8(Peakfinder8&&) noexcept;
  Peakfinder8& operator=(Peakfinder8&&) noexcept;
  Peakfinder8(const Peakfinder8&) = delete;
  Peakfinder8& operator=(const Peakfinder8&) = delete;

  const Peakfinder8Params& params() const noexcept;
  std::size_t rows() const noexcept;
  std::size_t cols() const noexcept;

  /// Appends the peaks of `frames` consecutive frames (rows x cols each) to `out`, one event
  /// per frame; frames run in parallel over `threads` (0 = all cores). Thread-safe.
  void find(const void* data, PeakInput type, std::size_t frames, PeakList& out, int threads = 0) const;
  void find(std::span<const float> data, PeakList& out, int threads = 0) const;

  /// Radial bins: rint of the largest radius, plus one.
  std::size_t rings() const noexcept;
  /// The per-ring statistics peakfinder8 computes for one frame (psana's five sigma-clipping
  /// passes): each bin's final offset (mean) and upper threshold, `rings()` of each. Bins with no
  /// good pixel read offset 0 and threshold FLT_MAX. For inspecting thresholds and for tests.
  void ring_stats(const void* frame, PeakInput type, std::span<float> offset, std::span<float> threshold) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lclstream::peaks
