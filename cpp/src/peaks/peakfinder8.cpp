// peakfinder8: geometry preparation, per-frame driver and the peak growth, a line-by-line
// port of psana's process_panel / peak_search / search_in_ring (psana/peakFinder/peakfinder8.cc)
// so that the float arithmetic, the growth order and its quirks give the same bits.
#include "lclstream/peakfinder8.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>
#include <string>
#include <type_traits>

#include "kernels.hpp"
#include "lclstream/error.hpp"
#include "lclstream/isa.hpp"
#include "lclstream/parallel.hpp"

namespace lclstream::peaks {

using detail::kLanes;

void PeakList::clear() {
  offsets.assign(1, 0);
  x.clear();
  y.clear();
  total_intensity.clear();
  max_intensity.clear();
  sigma.clear();
  snr.clear();
  npix.clear();
  index.clear();
}

namespace {

/// Per-thread working memory: allocated once, cleared incrementally after every frame.
struct Scratch {
  std::vector<float> blk_store;  // one ring-group block (64-byte aligned view in blk)
  std::vector<float> bucket;     // the frame's pixels grouped by block (Impl::runs)
  float* blk = nullptr;
  std::vector<std::int32_t> group_seeds;
  std::vector<std::int32_t> seeds;      // every seed of the frame (to clear the bitmap)
  std::vector<std::uint64_t> bitmap;    // seed bits, row-major
  std::vector<std::uint8_t> in_peak;    // psana's pix_in_peak_map (0, 1, 2)
  std::vector<std::int32_t> touched;    // pixels set in in_peak
  std::vector<int> infs, inss;          // psana's growth lists (stale entries matter: see docs)
  std::size_t infs_hwm = 0;             // slots written since the last clear (calloc in psana)
  std::vector<int> peak_pixels;
  std::vector<float> roffset, rthreshold;  // per radial bin
  // Photon counts (allocated on first use): per-ring value histograms, the seed candidates, the
  // pixels too large for the histogram (as (bin, value) once sorted), the blocks whose rings
  // could not be settled from the histogram.
  std::vector<std::uint32_t> hist, candidates, over;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> over_bins;
  std::vector<std::uint8_t> ordered;
};

struct Group {
  std::size_t offset = 0;  // into Impl::idx
  std::size_t len = 0;     // rows of kLanes
  std::size_t bucket = 0, bucket_end = 0;  // its pixels' range in the bucket buffer
  std::int32_t bins[kLanes];
};

}  // namespace

struct Peakfinder8::Impl {
  Peakfinder8Params p;
  std::size_t rows = 0, cols = 0;
  std::vector<std::int32_t> bin;    // rint(radius) per pixel
  std::vector<std::uint8_t> mask;   // effective mask (0/1): input mask and resolution window
  int nbins = 0;
  std::vector<Group> groups;
  std::vector<std::int32_t> idx;    // ring-group blocks of pixel indices, -1 = padding
  std::vector<std::int32_t> bidx;   // the same blocks as positions in the bucket buffer
  std::vector<detail::Run> runs;    // frame -> bucket copies, in frame order
  std::vector<detail::Run> group_runs;      // the same copies block by block
  std::vector<std::size_t> group_run_at;    // block g's copies: [at[g], at[g + 1])
  std::vector<std::uint16_t> bin16;         // ring per pixel, kNoBin if outside every block
  std::vector<std::uint32_t> ring_good;     // good pixels per ring
  std::vector<std::int32_t> group_of_bin;   // block per ring, -1 for rings with no good pixel
  bool counts_ok = false;                   // bin16 can hold every ring
  std::size_t bucket_size = 0;      // pixels copied per frame
  std::size_t max_block = 0;        // largest group, elements

  mutable std::mutex pool_mutex;
  mutable std::vector<std::unique_ptr<Scratch>> pool;

  std::unique_ptr<Scratch> acquire() const {
    {
      std::lock_guard<std::mutex> lock(pool_mutex);
      if (!pool.empty()) {
        auto s = std::move(pool.back());
        pool.pop_back();
        return s;
      }
    }
    auto s = std::make_unique<Scratch>();
    s->blk_store.assign(max_block + 16, 0.0f);
    auto addr = reinterpret_cast<std::uintptr_t>(s->blk_store.data());
    s->blk = s->blk_store.data() + ((64 - addr % 64) % 64) / sizeof(float);
    s->group_seeds.assign(max_block, 0);
    s->bucket.assign(bucket_size + 1, 0.0f);
    const std::size_t npix = rows * cols;
    s->bitmap.assign(npix / 64 + 2, 0);
    s->in_peak.assign(npix, 0);
    const auto asic_px = static_cast<std::size_t>(p.asic_nx) * static_cast<std::size_t>(p.asic_ny);
    s->infs.assign(asic_px + 1, 0);
    s->inss.assign(asic_px + 1, 0);
    s->peak_pixels.assign(static_cast<std::size_t>(p.max_pixel_count), 0);
    s->roffset.assign(static_cast<std::size_t>(nbins), 0.0f);
    s->rthreshold.assign(static_cast<std::size_t>(nbins), FLT_MAX);
    return s;
  }
  void release(std::unique_ptr<Scratch> s) const {
    std::lock_guard<std::mutex> lock(pool_mutex);
    pool.push_back(std::move(s));
  }

  template <class T>
  void find_one(const T* frame, Scratch& s, PeakList& out) const;
  template <class T>
  void stats_and_seeds(const T* frame, Scratch& s, Isa isa) const;
  template <class T>
  void clip_block(const T* frame, const Group& g, bool whole_frame_copied, Scratch& s) const;
  template <class T>
  void clip_counts(const T* frame, Scratch& s) const;
  bool settle_ring(std::size_t b, const std::uint32_t* h, const std::pair<std::uint32_t, std::uint32_t>* ov,
                   std::size_t n_ov, float& roffset, float& rthreshold) const;
};

namespace {

template <class T>
struct GrowCtx {
  const T* copy;
  const std::int32_t* bin;
  const std::uint8_t* mask;
  Scratch* s;
  int asic_size_fs, asic_size_ss, num_pix_fs;
  int aifs, aiss;
  int max_pix_count;
};

template <class T>
inline float val(const T* d, int i) {
  return static_cast<float>(d[i]);
}

// psana's peak_search, including its reads of infs[p] after a write may have replaced it.
template <class T>
void peak_search(int p, GrowCtx<T>& c, int* num_pix_in_peak, float* sum_com_fs, float* sum_com_ss, float* sum_i) {
  static constexpr int search_fs[9] = {0, -1, 0, 1, -1, 1, -1, 0, 1};
  static constexpr int search_ss[9] = {0, -1, -1, -1, 0, 0, 1, 1, 1};
  Scratch& s = *c.s;
  int* infs = s.infs.data();
  int* inss = s.inss.data();
  for (int k = 0; k < 9; ++k) {
    if ((infs[p] + search_fs[k]) < 0) continue;
    if ((infs[p] + search_fs[k]) >= c.asic_size_fs) continue;
    if ((inss[p] + search_ss[k]) < 0) continue;
    if ((inss[p] + search_ss[k]) >= c.asic_size_ss) continue;
    const int curr_fs = infs[p] + search_fs[k] + c.aifs * c.asic_size_fs;
    const int curr_ss = inss[p] + search_ss[k] + c.aiss * c.asic_size_ss;
    const int pi = curr_fs + curr_ss * c.num_pix_fs;
    const int curr_radius = c.bin[pi];
    const float curr_threshold = s.rthreshold[static_cast<std::size_t>(curr_radius)];
    if (val(c.copy, pi) > curr_threshold && s.in_peak[static_cast<std::size_t>(pi)] == 0 && c.mask[pi] != 0) {
      const float curr_i = val(c.copy, pi) - s.roffset[static_cast<std::size_t>(curr_radius)];
      *sum_i += curr_i;
      *sum_com_fs += curr_i * static_cast<float>(curr_fs);
      *sum_com_ss += curr_i * static_cast<float>(curr_ss);
      const int n = *num_pix_in_peak;
      inss[n] = inss[p] + search_ss[k];
      infs[n] = infs[p] + search_fs[k];
      s.in_peak[static_cast<std::size_t>(pi)] = 1;
      s.touched.push_back(pi);
      if (n < c.max_pix_count) s.peak_pixels[static_cast<std::size_t>(n)] = pi;
      *num_pix_in_peak = n + 1;
      s.infs_hwm = std::max(s.infs_hwm, static_cast<std::size_t>(n) + 1);
    }
  }
}

// psana's search_in_ring: a disk of radius 2 * local_bg_radius (the upper edge excluded).
template <class T>
void search_in_ring(GrowCtx<T>& c, int com_fs_int, int com_ss_int, int npix_total, float* local_sigma,
                    float* local_offset, float* background_max_i, int com_idx, int local_bg_radius) {
  const Scratch& s = *c.s;
  const int ring_width = 2 * local_bg_radius;
  float sum_i = 0, sum_i_squared = 0;
  int np_sigma = 0;
  for (int ssj = -ring_width; ssj < ring_width; ssj++) {
    if ((com_ss_int + ssj) < 0 || (com_ss_int + ssj) >= c.asic_size_ss) continue;
    for (int fsi = -ring_width; fsi < ring_width; fsi++) {
      if ((com_fs_int + fsi) < 0) continue;
      if ((com_fs_int + fsi) >= c.asic_size_fs) continue;
      // psana: sqrt(fsi^2 + ssj^2) > ring_width, exactly this on integers.
      if (fsi * fsi + ssj * ssj > ring_width * ring_width) continue;
      const int curr_fs = com_fs_int + fsi + c.aifs * c.asic_size_fs;
      const int curr_ss = com_ss_int + ssj + c.aiss * c.asic_size_ss;
      const int pi = curr_fs + curr_ss * c.num_pix_fs;
      const float curr_threshold = s.rthreshold[static_cast<std::size_t>(c.bin[pi])];
      const float curr_i = val(c.copy, pi);
      if (curr_i < curr_threshold && s.in_peak[static_cast<std::size_t>(pi)] == 0 && c.mask[pi] != 0) {
        np_sigma++;
        sum_i += curr_i;
        sum_i_squared += (curr_i * curr_i);
        if (curr_i > *background_max_i) *background_max_i = curr_i;
      }
    }
  }
  if (np_sigma != 0) {
    *local_offset = sum_i / static_cast<float>(np_sigma);
    *local_sigma = sum_i_squared / static_cast<float>(np_sigma) - (*local_offset * *local_offset);
    if (*local_sigma >= 0) {
      *local_sigma = std::sqrt(*local_sigma);
    } else {
      *local_sigma = 0.01f;
    }
  } else {
    // psana reads r_map[com_idx] unchecked; a centre of mass outside the frame (possible only
    // with negative weights) is undefined there and reads the first bin's offset here.
    const int b = com_idx >= 0 && com_idx < npix_total ? c.bin[com_idx] : 0;
    *local_offset = s.roffset[static_cast<std::size_t>(b)];
    *local_sigma = 0.01f;
  }
}

}  // namespace

namespace {

template <class T>
void copy_runs(const T* frame, const detail::Run* rn, std::size_t n, float* bucket, bool wide) {
  if constexpr (std::is_same_v<T, float>) {
    (wide ? &detail::avx512::copy_runs_f32 : &detail::scalar::copy_runs_f32)(frame, rn, n, bucket);
  } else if constexpr (std::is_same_v<T, std::uint16_t>) {
    (wide ? &detail::avx512::copy_runs_u16 : &detail::scalar::copy_runs_u16)(frame, rn, n, bucket);
  } else {
    (wide ? &detail::avx512::copy_runs_u32 : &detail::scalar::copy_runs_u32)(frame, rn, n, bucket);
  }
}

}  // namespace

// One block the general way: its pixels gathered from the bucket into kLanes rings side by side
// and clipped there, in cache. Unless the whole frame was copied to the bucket in one forward
// pass, the block's own runs are copied first.
template <class T>
void Peakfinder8::Impl::clip_block(const T* frame, const Group& g, bool whole_frame_copied, Scratch& s) const {
  const bool wide = active_isa() == Isa::avx512;
  float* bucket = s.bucket.data();
  if (!whole_frame_copied) {
    const std::size_t gi = static_cast<std::size_t>(&g - groups.data());
    copy_runs(frame, group_runs.data() + group_run_at[gi], group_run_at[gi + 1] - group_run_at[gi], bucket, wide);
  }
  float roff[kLanes], rthr[kLanes];
  const std::size_t ns = (wide ? &detail::avx512::ring_block : &detail::scalar::ring_block)(
      bucket, bidx.data() + g.offset, idx.data() + g.offset, g.len, p.minimum_snr, p.adc_threshold, s.blk, roff, rthr,
      s.group_seeds.data(), bucket + g.bucket, bucket + g.bucket_end);
  for (std::size_t l = 0; l < kLanes; ++l) {
    if (g.bins[l] < 0) continue;
    s.roffset[static_cast<std::size_t>(g.bins[l])] = roff[l];
    s.rthreshold[static_cast<std::size_t>(g.bins[l])] = rthr[l];
  }
  for (std::size_t i = 0; i < ns; ++i) {
    const auto px = static_cast<std::uint32_t>(s.group_seeds[i]);
    s.bitmap[px >> 6] |= std::uint64_t{1} << (px & 63);
    s.seeds.push_back(s.group_seeds[i]);
  }
}

// psana's five clipping passes over one ring, from its value histogram. Exact when the sum of
// the squared values of the whole ring is below 2^24: every partial sum psana forms, in any
// order, is then an integer that float holds exactly, so its float sums are these integer sums.
// False (the ring needs the ordered path) when that does not hold, or when the threshold is
// negative (zero pixels, which are not listed, would then be seeds).
bool Peakfinder8::Impl::settle_ring(std::size_t b, const std::uint32_t* h, const std::pair<std::uint32_t, std::uint32_t>* ov,
                                    std::size_t n_ov, float& roffset_out, float& rthreshold_out) const {
  constexpr std::uint64_t kExact = std::uint64_t{1} << 24;
  const auto stride = static_cast<std::size_t>(nbins);  // h[v * stride]: pixels of value v
  std::uint64_t nonzero = 0, sq = 0;
  std::uint32_t vmax = 0;
  for (std::uint32_t v = 1; v < detail::kHistValues; ++v) {
    if (h[v * stride] == 0) continue;
    nonzero += h[v * stride];
    sq += std::uint64_t{h[v * stride]} * v * v;
    vmax = v;
  }
  for (std::size_t j = 0; j < n_ov; ++j) {
    nonzero += 1;
    sq += std::uint64_t{ov[j].second} * ov[j].second;
  }
  if (sq >= kExact) return false;
  const std::uint64_t zeros = ring_good[b] - nonzero;
  float hi = 1e9f, lo = -1e9f, roff = 0.0f;
  for (int it = 0; it < detail::kIterations; ++it) {
    std::uint64_t c = 0, sum = 0, sumsq = 0;
    if (0.0f < hi && 0.0f > lo) c += zeros;
    for (std::uint32_t v = 1; v <= vmax; ++v) {
      const auto fv = static_cast<float>(v);
      if (h[v * stride] != 0 && fv < hi && fv > lo) {
        c += h[v * stride];
        sum += std::uint64_t{h[v * stride]} * v;
        sumsq += std::uint64_t{h[v * stride]} * v * v;
      }
    }
    for (std::size_t j = 0; j < n_ov; ++j) {
      const std::uint32_t v = ov[j].second;
      const auto fv = static_cast<float>(v);
      if (fv < hi && fv > lo) {
        c += 1;
        sum += v;
        sumsq += std::uint64_t{v} * v;
      }
    }
    const float h0 = hi, l0 = lo;
    detail::radial_stats_lane(static_cast<float>(sum), static_cast<float>(sumsq), static_cast<int>(c),
                                      p.minimum_snr, p.adc_threshold, roff, hi, lo);
    if (hi == h0 && lo == l0) break;  // the same pixels again: the passes left change nothing
  }
  if (!(hi >= 0.0f)) return false;
  roffset_out = roff;
  rthreshold_out = hi;
  return true;
}

// Photon counts: one pass counts the nonzero good pixels' values per ring and lists the seed
// candidates; the rings' statistics come from those counts (settle_ring) and the seeds from the
// list, so the frame is never transposed. A block with a ring that cannot be settled exactly that way takes
// the general path.
template <class T>
void Peakfinder8::Impl::clip_counts(const T* frame, Scratch& s) const {
  const bool wide = active_isa() == Isa::avx512;
  const std::size_t npix = rows * cols;
  if (s.candidates.size() < npix) {
    s.hist.assign(static_cast<std::size_t>(nbins) * detail::kHistValues, 0);
    s.candidates.assign(npix, 0);
    s.over.assign(npix, 0);
    s.ordered.assign(groups.size(), 0);
  }
  // A seed is above its ring's threshold, which is never below adc_threshold: only pixels
  // from floor(adc_threshold) up (a superset, checked exactly below) are listed.
  const double floor_adc = std::floor(static_cast<double>(p.adc_threshold));
  const auto min_candidate = static_cast<std::uint32_t>(std::clamp(floor_adc, 1.0, 4294967295.0));
  std::size_t n_over = 0;
  std::size_t nnz;
  if constexpr (std::is_same_v<T, std::uint16_t>) {
    nnz = (wide ? &detail::avx512::histogram_u16 : &detail::scalar::histogram_u16)(
        frame, bin16.data(), npix, s.hist.data(), static_cast<std::size_t>(nbins), min_candidate, s.candidates.data(), s.over.data(), &n_over);
  } else {
    nnz = (wide ? &detail::avx512::histogram_u32 : &detail::scalar::histogram_u32)(
        frame, bin16.data(), npix, s.hist.data(), static_cast<std::size_t>(nbins), min_candidate, s.candidates.data(), s.over.data(), &n_over);
  }
  s.over_bins.clear();
  for (std::size_t j = 0; j < n_over; ++j) {
    const std::uint32_t px = s.over[j];
    s.over_bins.emplace_back(bin16[px], static_cast<std::uint32_t>(frame[px]));
  }
  std::sort(s.over_bins.begin(), s.over_bins.end());
  std::size_t cursor = 0;  // groups hold ascending rings, so one cursor walks over_bins
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    const Group& g = groups[gi];
    bool exact = true;
    for (std::size_t l = 0; l < kLanes && g.bins[l] >= 0; ++l) {
      const auto b = static_cast<std::size_t>(g.bins[l]);
      while (cursor < s.over_bins.size() && s.over_bins[cursor].first < b) ++cursor;
      std::size_t end = cursor;
      while (end < s.over_bins.size() && s.over_bins[end].first == b) ++end;
      exact = exact && settle_ring(b, s.hist.data() + b, s.over_bins.data() + cursor, end - cursor,
                                   s.roffset[b], s.rthreshold[b]);
      cursor = end;
    }
    s.ordered[gi] = exact ? 0 : 1;
    if (!exact) clip_block(frame, g, false, s);  // rewrites every ring of the block
  }
  for (std::size_t j = 0; j < nnz; ++j) {
    const std::uint32_t px = s.candidates[j];
    const std::uint16_t b = bin16[px];
    if (s.ordered[static_cast<std::size_t>(group_of_bin[b])] != 0) continue;  // seeded by clip_block
    if (static_cast<float>(frame[px]) > s.rthreshold[b]) {
      s.bitmap[px >> 6] |= std::uint64_t{1} << (px & 63);
      s.seeds.push_back(static_cast<std::int32_t>(px));
    }
  }
  std::fill(s.hist.begin(), s.hist.end(), 0);
}

template <class T>
void Peakfinder8::Impl::stats_and_seeds(const T* frame, Scratch& s, Isa isa) const {
  s.seeds.clear();
  if constexpr (!std::is_same_v<T, float>) {
    if (counts_ok) {
      clip_counts(frame, s);
      return;
    }
  }
  // One forward pass copies the frame into per-block buckets (runs of consecutive pixels, so
  // the frame streams through once); then each block is clipped from its bucket.
  copy_runs(frame, runs.data(), runs.size(), s.bucket.data(), isa == Isa::avx512);
  for (const Group& g : groups) clip_block(frame, g, true, s);
}

template <class T>
void Peakfinder8::Impl::find_one(const T* frame, Scratch& s, PeakList& out) const {
  const Isa isa = active_isa();
  const int W = static_cast<int>(cols);
  const int npix_total = static_cast<int>(rows * cols);

  // 1. Ring statistics and seeds.
  stats_and_seeds(frame, s, isa);

  // 2. psana's scan: ASICs in row-major order, interior pixels only, seeds not yet in a peak.
  std::fill(s.infs.begin(), s.infs.begin() + static_cast<std::ptrdiff_t>(s.infs_hwm), 0);
  std::fill(s.inss.begin(), s.inss.begin() + static_cast<std::ptrdiff_t>(s.infs_hwm), 0);
  s.infs_hwm = 0;
  int peak_count = 0;
  const int asic_size_fs = p.asic_nx, asic_size_ss = p.asic_ny;
  const int min_pix_count = p.min_pixel_count, max_pix_count = p.max_pixel_count;
  const float min_snr = p.minimum_snr;
  const int max_n_peaks = p.max_num_peaks;
  GrowCtx<T> c{frame, bin.data(), mask.data(), &s, asic_size_fs, asic_size_ss, W, 0, 0, max_pix_count};

  auto grow = [&](int pxidx, int pxfs, int pxss) {
    const int aifs = c.aifs, aiss = c.aiss;
    int* infs = s.infs.data();
    int* inss = s.inss.data();
    infs[0] = pxfs;
    inss[0] = pxss;
    s.infs_hwm = std::max<std::size_t>(s.infs_hwm, 1);
    s.peak_pixels[0] = pxidx;
    int num_pix_in_peak = 0;
    float sum_i = 0, sum_com_fs = 0, sum_com_ss = 0;
    int lt_num_pix_in_pk;
    do {
      lt_num_pix_in_pk = num_pix_in_peak;
      for (int pp = 0; pp <= num_pix_in_peak; pp++) peak_search(pp, c, &num_pix_in_peak, &sum_com_fs, &sum_com_ss, &sum_i);
    } while (lt_num_pix_in_pk != num_pix_in_peak);

    if (num_pix_in_peak < min_pix_count || num_pix_in_peak > max_pix_count) return;
    if (std::fabs(static_cast<double>(sum_i)) < 1e-10) return;
    float peak_com_fs = sum_com_fs / std::fabs(sum_i);
    float peak_com_ss = sum_com_ss / std::fabs(sum_i);
    const int com_idx = static_cast<int>(std::rint(peak_com_fs)) + static_cast<int>(std::rint(peak_com_ss)) * W;
    const int peak_com_fs_int = static_cast<int>(std::rint(peak_com_fs)) - aifs * asic_size_fs;
    const int peak_com_ss_int = static_cast<int>(std::rint(peak_com_ss)) - aiss * asic_size_ss;

    float local_sigma = 0.0f, local_offset = 0.0f, background_max_i = 0.0f;
    search_in_ring(c, peak_com_fs_int, peak_com_ss_int, npix_total, &local_sigma, &local_offset, &background_max_i,
                   com_idx, p.local_bg_radius);

    float peak_tot_i = 0, pk_tot_i_raw = 0, peak_max_i = 0, pk_max_i_raw = 0;
    sum_com_fs = 0;
    sum_com_ss = 0;
    for (int k = 0; k < num_pix_in_peak && k < max_pix_count; k++) {
      const int curr_idx = s.peak_pixels[static_cast<std::size_t>(k)];
      const float curr_i_raw = val(frame, curr_idx);
      const float curr_i = curr_i_raw - local_offset;
      peak_tot_i += curr_i;
      pk_tot_i_raw += curr_i_raw;
      const int curr_fs = curr_idx % W;
      const int curr_ss = curr_idx / W;
      sum_com_fs += curr_i_raw * static_cast<float>(curr_fs);
      sum_com_ss += curr_i_raw * static_cast<float>(curr_ss);
      if (curr_i_raw > pk_max_i_raw) pk_max_i_raw = curr_i_raw;
      if (curr_i > peak_max_i) peak_max_i = curr_i;
    }
    if (std::fabs(static_cast<double>(pk_tot_i_raw)) < 1e-10) return;
    peak_com_fs = sum_com_fs / std::fabs(pk_tot_i_raw);
    peak_com_ss = sum_com_ss / std::fabs(pk_tot_i_raw);
    const float peak_snr = std::fabs(static_cast<double>(local_sigma)) > 1e-10 ? peak_tot_i / local_sigma : 0.0f;
    if (peak_snr < min_snr) return;
    if (peak_max_i < background_max_i - local_offset) return;
    if (peak_com_fs < static_cast<float>(aifs * asic_size_fs) ||
        peak_com_fs > static_cast<float>((aifs + 1) * asic_size_fs - 1) ||
        peak_com_ss < static_cast<float>(aiss * asic_size_ss) ||
        peak_com_ss > static_cast<float>((aiss + 1) * asic_size_ss - 1))
      return;
    for (int k = 0; k < num_pix_in_peak && k < max_pix_count; k++)
      s.in_peak[static_cast<std::size_t>(s.peak_pixels[static_cast<std::size_t>(k)])] = 2;
    const int peak_com_idx = static_cast<int>(std::rint(peak_com_fs)) + static_cast<int>(std::rint(peak_com_ss)) * W;
    if (peak_count < max_n_peaks) {
      out.x.push_back(peak_com_fs);
      out.y.push_back(peak_com_ss);
      out.total_intensity.push_back(peak_tot_i);
      out.max_intensity.push_back(peak_max_i);
      out.sigma.push_back(local_sigma);
      out.snr.push_back(peak_snr);
      out.npix.push_back(num_pix_in_peak);
      out.index.push_back(peak_com_idx);
    }
    peak_count += 1;
  };

  if (!s.seeds.empty() && max_n_peaks > 0 && asic_size_fs > 2 && asic_size_ss > 2) {
    for (int aiss = 0; aiss < p.nasics_y && peak_count < max_n_peaks; aiss++) {
      for (int aifs = 0; aifs < p.nasics_x && peak_count < max_n_peaks; aifs++) {
        c.aifs = aifs;
        c.aiss = aiss;
        for (int pxss = 1; pxss < asic_size_ss - 1 && peak_count < max_n_peaks; pxss++) {
          const std::size_t row0 = static_cast<std::size_t>(pxss + aiss * asic_size_ss) * cols;
          const std::size_t b = row0 + static_cast<std::size_t>(aifs * asic_size_fs + 1);
          const std::size_t e = row0 + static_cast<std::size_t>(aifs * asic_size_fs + asic_size_fs - 1);  // exclusive
          for (std::size_t w = b >> 6; w <= (e - 1) >> 6 && peak_count < max_n_peaks; ++w) {
            std::uint64_t bits = s.bitmap[w];
            if (bits == 0) continue;
            if (w == (b >> 6)) bits &= ~std::uint64_t{0} << (b & 63);
            if (w == ((e - 1) >> 6) && ((e - 1) & 63) != 63) bits &= (std::uint64_t{1} << (((e - 1) & 63) + 1)) - 1;
            while (bits != 0 && peak_count < max_n_peaks) {
              const std::size_t px = (w << 6) + static_cast<std::size_t>(__builtin_ctzll(bits));
              bits &= bits - 1;
              if (s.in_peak[px] != 0) continue;
              const int pxfs = static_cast<int>(px - row0) - aifs * asic_size_fs;
              grow(static_cast<int>(px), pxfs, pxss);
            }
          }
        }
      }
    }
  }
  out.offsets.push_back(out.x.size());

  // 3. Leave the scratch as psana's calloc would find it.
  for (const std::int32_t px : s.seeds) s.bitmap[static_cast<std::uint32_t>(px) >> 6] = 0;
  for (const std::int32_t px : s.touched) s.in_peak[static_cast<std::size_t>(px)] = 0;
  s.touched.clear();
}

Peakfinder8::Peakfinder8(const Peakfinder8Params& params, std::size_t rows, std::size_t cols,
                         std::span<const float> radius, std::span<const std::uint8_t> mask)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  const Peakfinder8Params& p = params;
  if (p.asic_nx <= 0 || p.asic_ny <= 0 || p.nasics_x <= 0 || p.nasics_y <= 0)
    throw ValueError("peakfinder8: asic_nx, asic_ny, nasics_x and nasics_y must be positive");
  if (rows != static_cast<std::size_t>(p.asic_ny) * static_cast<std::size_t>(p.nasics_y) ||
      cols != static_cast<std::size_t>(p.asic_nx) * static_cast<std::size_t>(p.nasics_x))
    throw ValueError("peakfinder8: frame is " + std::to_string(rows) + " x " + std::to_string(cols) +
                     " but the layout (nasics_y * asic_ny x nasics_x * asic_nx) is " +
                     std::to_string(p.asic_ny * p.nasics_y) + " x " + std::to_string(p.asic_nx * p.nasics_x));
  const std::size_t npix = rows * cols;
  if (npix >= (std::size_t{1} << 31)) throw ValueError("peakfinder8: frames of 2^31 pixels or more are not supported");
  if (p.max_pixel_count < 1) throw ValueError("peakfinder8: max_pixel_count must be at least 1");
  if (p.max_num_peaks < 0) throw ValueError("peakfinder8: max_num_peaks must not be negative");
  if (p.local_bg_radius < 0 || p.local_bg_radius > 1024) throw ValueError("peakfinder8: local_bg_radius must be in [0, 1024]");
  if (radius.size() != npix)
    throw ValueError("peakfinder8: radius map has " + std::to_string(radius.size()) + " pixels, the frame " +
                     std::to_string(npix));
  if (!mask.empty() && mask.size() != npix)
    throw ValueError("peakfinder8: mask has " + std::to_string(mask.size()) + " pixels, the frame " + std::to_string(npix));
  m.p = p;
  m.rows = rows;
  m.cols = cols;
  float max_r = -1e9f;
  for (const float r : radius) {
    if (!(r >= 0.0f) || !std::isfinite(r)) throw ValueError("peakfinder8: radius map values must be finite and >= 0");
    if (r > max_r) max_r = r;
  }
  if (max_r > 1e7f) throw ValueError("peakfinder8: radius map values above 1e7 pixels");
  m.nbins = static_cast<int>(std::ceil(max_r)) + 1;
  m.bin.resize(npix);
  m.mask.resize(npix);
  std::vector<std::uint32_t> count(static_cast<std::size_t>(m.nbins), 0);
  for (std::size_t i = 0; i < npix; ++i) {
    const float r = radius[i];
    m.bin[i] = static_cast<std::int32_t>(std::rint(r));
    const bool good = (mask.empty() || mask[i] != 0) && r >= p.min_res && r <= p.max_res;
    m.mask[i] = good ? 1 : 0;
    if (good) ++count[static_cast<std::size_t>(m.bin[i])];
  }
  // Rings in radial order, kLanes consecutive non-empty rings per block: neighbouring rings
  // cover the same parts of the frame, so one block row can read nearby pixels.
  std::vector<std::int32_t> order;
  for (int b = 0; b < m.nbins; ++b)
    if (count[static_cast<std::size_t>(b)] > 0) order.push_back(b);
  std::vector<std::int32_t> lane_of(static_cast<std::size_t>(m.nbins), -1), group_of(static_cast<std::size_t>(m.nbins), -1);
  for (std::size_t g0 = 0; g0 < order.size(); g0 += kLanes) {
    Group g;
    for (std::size_t l = 0; l < kLanes; ++l) {
      g.bins[l] = g0 + l < order.size() ? order[g0 + l] : -1;
      if (g.bins[l] >= 0) {
        lane_of[static_cast<std::size_t>(g.bins[l])] = static_cast<std::int32_t>(l);
        group_of[static_cast<std::size_t>(g.bins[l])] = static_cast<std::int32_t>(m.groups.size());
      }
    }
    m.groups.push_back(g);
  }
  // Each lane keeps its ring's pixels in row-major order (psana's summation order), but the
  // block row of a pixel follows its rank among all the block's pixels in frame order (rank /
  // kLanes, or the lane's next row if that is later): the kLanes values of a block row then lie
  // close together in the frame, and one pass over a block walks forward through the frame
  // instead of holding kLanes far-apart fronts in cache. NaN padding fills the gaps.
  const std::size_t ng = m.groups.size();
  std::vector<std::size_t> merged(ng, 0);
  std::vector<std::int64_t> last(ng * kLanes, -1);
  std::vector<std::int32_t> row_of(npix, -1);  // block rows < npix < 2^31
  for (std::size_t i = 0; i < npix; ++i) {
    if (!m.mask[i]) continue;
    const auto b = static_cast<std::size_t>(m.bin[i]);
    const auto g = static_cast<std::size_t>(group_of[b]);
    std::int64_t& prev = last[g * kLanes + static_cast<std::size_t>(lane_of[b])];
    const auto target = static_cast<std::int64_t>(merged[g]++ / kLanes);
    prev = std::max(prev + 1, target);
    row_of[i] = static_cast<std::int32_t>(prev);
  }
  std::size_t total = 0;
  for (std::size_t g = 0; g < ng; ++g) {
    std::int64_t rows_used = 0;
    for (std::size_t l = 0; l < kLanes; ++l) rows_used = std::max(rows_used, last[g * kLanes + l] + 1);
    m.groups[g].offset = total;
    m.groups[g].len = static_cast<std::size_t>(rows_used);
    total += m.groups[g].len * kLanes;
    m.max_block = std::max(m.max_block, m.groups[g].len * kLanes);
  }
  // Buckets: every pixel whose ring has a block (masked ones too, so that runs stay long) goes
  // to its block's bucket in frame order.
  std::vector<std::uint32_t> bucket_fill(ng, 0);
  for (std::size_t i = 0; i < npix; ++i) {
    const std::int32_t g = group_of[static_cast<std::size_t>(m.bin[i])];
    if (g >= 0) ++bucket_fill[static_cast<std::size_t>(g)];
  }
  std::vector<std::uint32_t> bucket_at(ng, 0);
  std::size_t bucket_total = 0;
  for (std::size_t g = 0; g < ng; ++g) {
    bucket_at[g] = static_cast<std::uint32_t>(bucket_total);
    m.groups[g].bucket = bucket_total;
    bucket_total += bucket_fill[g];
    m.groups[g].bucket_end = bucket_total;
  }
  m.bucket_size = bucket_total;
  m.idx.assign(total, -1);
  m.bidx.assign(total, -1);
  std::int32_t run_group = -1;
  for (std::size_t i = 0; i < npix; ++i) {
    const auto b = static_cast<std::size_t>(m.bin[i]);
    const std::int32_t gi = group_of[b];
    if (gi < 0) {
      run_group = -1;
      continue;
    }
    const auto g = static_cast<std::size_t>(gi);
    const std::uint32_t pos = bucket_at[g]++;
    if (gi == run_group) {
      ++m.runs.back().len;
    } else {
      m.runs.push_back({static_cast<std::uint32_t>(i), 1, pos});
      run_group = gi;
    }
    if (!m.mask[i]) continue;
    const std::size_t slot = m.groups[g].offset + static_cast<std::size_t>(row_of[i]) * kLanes + static_cast<std::size_t>(lane_of[b]);
    m.idx[slot] = static_cast<std::int32_t>(i);
    m.bidx[slot] = static_cast<std::int32_t>(pos);
  }
  // The same copies block by block (a block that leaves the photon-count path copies its own).
  m.group_run_at.assign(ng + 1, 0);
  for (const detail::Run& r : m.runs) ++m.group_run_at[static_cast<std::size_t>(group_of[static_cast<std::size_t>(m.bin[r.src])]) + 1];
  for (std::size_t g = 0; g < ng; ++g) m.group_run_at[g + 1] += m.group_run_at[g];
  m.group_runs.resize(m.runs.size());
  {
    std::vector<std::size_t> at(m.group_run_at.begin(), m.group_run_at.end() - 1);
    for (const detail::Run& r : m.runs) m.group_runs[at[static_cast<std::size_t>(group_of[static_cast<std::size_t>(m.bin[r.src])])]++] = r;
  }
  m.group_of_bin = group_of;
  m.ring_good = count;
  m.counts_ok = m.nbins < static_cast<int>(detail::kNoBin);
  if (m.counts_ok) {
    m.bin16.resize(npix);
    for (std::size_t i = 0; i < npix; ++i)
      m.bin16[i] = m.mask[i] ? static_cast<std::uint16_t>(m.bin[i]) : detail::kNoBin;
  }
}

Peakfinder8::~Peakfinder8() = default;
Peakfinder8::Peakfinder8(Peakfinder8&&) noexcept = default;
Peakfinder8& Peakfinder8::operator=(Peakfinder8&&) noexcept = default;

const Peakfinder8Params& Peakfinder8::params() const noexcept { return impl_->p; }
std::size_t Peakfinder8::rows() const noexcept { return impl_->rows; }
std::size_t Peakfinder8::cols() const noexcept { return impl_->cols; }

namespace {

void append(PeakList& dst, const PeakList& src) {
  const std::uint64_t base = dst.x.size();
  auto cat = [](auto& a, const auto& b) { a.insert(a.end(), b.begin(), b.end()); };
  cat(dst.x, src.x);
  cat(dst.y, src.y);
  cat(dst.total_intensity, src.total_intensity);
  cat(dst.max_intensity, src.max_intensity);
  cat(dst.sigma, src.sigma);
  cat(dst.snr, src.snr);
  cat(dst.npix, src.npix);
  cat(dst.index, src.index);
  for (std::size_t e = 1; e < src.offsets.size(); ++e) dst.offsets.push_back(base + src.offsets[e]);
}

}  // namespace

void Peakfinder8::find(const void* data, PeakInput type, std::size_t frames, PeakList& out, int threads) const {
  const Impl& m = *impl_;
  const std::size_t npix = m.rows * m.cols;
  if (frames == 0) return;
  if (data == nullptr) throw ValueError("peakfinder8: no frame data");
  auto one = [&](std::size_t f, Scratch& s, PeakList& dst) {
    switch (type) {
      case PeakInput::f32:
        m.find_one(static_cast<const float*>(data) + f * npix, s, dst);
        break;
      case PeakInput::u16:
        m.find_one(static_cast<const std::uint16_t*>(data) + f * npix, s, dst);
        break;
      case PeakInput::u32:
        m.find_one(static_cast<const std::uint32_t*>(data) + f * npix, s, dst);
        break;
    }
  };
  const unsigned nt = resolve_threads(threads, frames);
  if (nt <= 1) {
    auto s = m.acquire();
    for (std::size_t f = 0; f < frames; ++f) one(f, *s, out);
    m.release(std::move(s));
    return;
  }
  std::vector<PeakList> part(frames);
  parallel_for(frames, static_cast<int>(nt), [&](std::size_t f) {
    auto s = m.acquire();
    one(f, *s, part[f]);
    m.release(std::move(s));
  });
  for (const PeakList& pl : part) append(out, pl);
}

void Peakfinder8::ring_stats(const void* frame, PeakInput type, std::span<float> offset,
                             std::span<float> threshold) const {
  const Impl& m = *impl_;
  const auto nb = static_cast<std::size_t>(m.nbins);
  if (frame == nullptr) throw ValueError("peakfinder8: no frame data");
  if (offset.size() != nb || threshold.size() != nb)
    throw ValueError("peakfinder8: ring_stats needs " + std::to_string(nb) + " offsets and thresholds");
  auto s = m.acquire();
  const Isa isa = active_isa();
  switch (type) {
    case PeakInput::f32:
      m.stats_and_seeds(static_cast<const float*>(frame), *s, isa);
      break;
    case PeakInput::u16:
      m.stats_and_seeds(static_cast<const std::uint16_t*>(frame), *s, isa);
      break;
    case PeakInput::u32:
      m.stats_and_seeds(static_cast<const std::uint32_t*>(frame), *s, isa);
      break;
  }
  std::copy(s->roffset.begin(), s->roffset.end(), offset.begin());
  std::copy(s->rthreshold.begin(), s->rthreshold.end(), threshold.begin());
  for (const std::int32_t px : s->seeds) s->bitmap[static_cast<std::uint32_t>(px) >> 6] = 0;
  m.release(std::move(s));
}

std::size_t Peakfinder8::rings() const noexcept { return static_cast<std::size_t>(impl_->nbins); }

void Peakfinder8::find(std::span<const float> data, PeakList& out, int threads) const {
  const std::size_t npix = impl_->rows * impl_->cols;
  if (data.size() % npix != 0)
    throw ValueError("peakfinder8: data holds " + std::to_string(data.size()) + " values, not a whole number of " +
                     std::to_string(npix) + "-pixel frames");
  find(data.data(), PeakInput::f32, data.size() / npix, out, threads);
}

}  // namespace lclstream::peaks
