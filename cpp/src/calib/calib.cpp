// Preparation of the per-run constants (planar float32 tables) and the one dispatch point
// of the calibration kernels.
#include "lclstream/calib.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "calib/kernels.hpp"
#include "lclstream/error.hpp"
#include "lclstream/isa.hpp"
#include "lclstream/parallel.hpp"

namespace lclstream::calib {

void* detail::table_allocate(std::size_t bytes) {
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  if (bytes < (std::size_t{1} << 20)) {
    void* p = std::malloc(bytes == 0 ? 1 : bytes);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  const std::size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
  void* p = std::aligned_alloc(kHuge, rounded);
  if (p == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  (void)madvise(p, rounded, MADV_HUGEPAGE);  // advisory only
#endif
  return p;
}

void detail::table_free(void* p) noexcept { std::free(p); }
namespace {

constexpr std::size_t kStreamBytes = 1U << 20;  // outputs this large bypass the cache

void check_size(const char* what, std::size_t got, std::size_t want) {
  if (got != want) {
    throw ValueError(std::string("calibration: ") + what + " has " + std::to_string(got) +
                     " elements, expected " + std::to_string(want));
  }
}

void check_energy(Output output, float e) {
  if (output == Output::photons && !(e > 0.0F && std::isfinite(e))) {
    throw ValueError("calibration: photon output needs photon_energy_keV > 0 (got " + std::to_string(e) + ")");
  }
}

/// 1/gain in float32, 0 where gain is 0 (psana's divide_protected).
float reciprocal(float g) { return g == 0.0F ? 0.0F : 1.0F / g; }

float mask_of(std::span<const std::uint8_t> mask, std::size_t p) {
  return mask.empty() || mask[p] != 0 ? 1.0F : 0.0F;
}

/// psana's ePix10ka gain range for configuration bits with data bit 14 at bit 5; -1: none.
int epix_range(unsigned cb) {
  if ((cb & 28U) == 28U) return 0;  // FH
  if ((cb & 28U) == 12U) return 1;  // FM
  if ((cb & 12U) == 8U) return 2;   // FL
  if ((cb & 60U) == 16U) return 3;  // AHL_H
  if ((cb & 60U) == 0U) return 4;   // AML_M
  if ((cb & 60U) == 48U) return 5;  // AHL_L
  if ((cb & 60U) == 32U) return 6;  // AML_L
  return -1;
}

template <class Out>
using Kernel = std::uint64_t (*)(const detail::Tables&, const std::uint16_t*, Out*, std::size_t, bool);

template <class Out>
Kernel<Out> pick() {
  const Isa isa = active_isa();
  if constexpr (std::is_same_v<Out, float>) {
    if (isa == Isa::avx512) return &detail::avx512::calib_f32;
    if (isa == Isa::avx2) return &detail::avx2::calib_f32;
    return &detail::scalar::calib_f32;
  } else if constexpr (std::is_same_v<Out, std::uint16_t>) {
    if (isa == Isa::avx512) return &detail::avx512::calib_u16;
    if (isa == Isa::avx2) return &detail::avx2::calib_u16;
    return &detail::scalar::calib_u16;
  } else {
    if (isa == Isa::avx512) return &detail::avx512::calib_u32;
    if (isa == Isa::avx2) return &detail::avx2::calib_u32;
    return &detail::scalar::calib_u32;
  }
}

template <class Out>
void check_output(Output mode, std::size_t frame_pixels, std::size_t n_raw, std::size_t n_out) {
  if (frame_pixels == 0 || n_raw % frame_pixels != 0) {
    throw ValueError("calibration: raw has " + std::to_string(n_raw) +
                     " pixels, not a whole number of frames of " + std::to_string(frame_pixels));
  }
  check_size("out", n_out, n_raw);
  const bool want_float = mode != Output::photons;
  if (want_float != std::is_same_v<Out, float>) {
    throw ValueError(want_float ? "calibration: keV/ADU output needs a float32 out array"
                                : "calibration: photon output needs a uint16 or uint32 out array");
  }
}

/// Splits [0, n) over threads and then at frame boundaries, since constants repeat per frame.
template <class F>
void for_segments(std::size_t n, std::size_t frame, int threads, F&& fn) {
  parallel_ranges(n, threads, 64, [&](std::size_t b, std::size_t e) {
    while (b < e) {
      const std::size_t p = b % frame;
      const std::size_t len = std::min(e - b, frame - p);
      fn(b, p, len, e - b);
      b += len;
    }
  });
}

}  // namespace

Calibrator Calibrator::jungfrau(std::span<const float> pedestal, std::span<const float> gain,
                                std::span<const float> offset, std::span<const std::uint8_t> mask,
                                std::size_t frame_pixels, Output output, float photon_energy_keV) {
  const std::size_t F = frame_pixels;
  check_size("Jungfrau pedestal", pedestal.size(), 3 * F);
  check_size("Jungfrau gain", gain.size(), 3 * F);
  if (!offset.empty()) check_size("Jungfrau offset", offset.size(), 3 * F);
  if (!mask.empty()) check_size("Jungfrau mask", mask.size(), F);
  check_energy(output, photon_energy_keV);
  Calibrator c;
  c.frame_pixels_ = F;
  c.output_ = output;
  c.photon_energy_ = photon_energy_keV;
  c.stages_ = 3;
  c.stage_of_code_[0] = 0;
  c.stage_of_code_[1] = 1;
  c.stage_of_code_[2] = kInvalidStage;
  c.stage_of_code_[3] = 2;
  c.data_mask_ = 0x3fff;
  c.slow_bits_ = 0xc000;
  c.poff_.resize(3 * F);
  c.gfac_.resize(3 * F);
  c.cm_flags_.assign(3 * F, 0);
  for (std::size_t i = 0; i < F; ++i) c.cm_flags_[i] = mask_of(mask, i) != 0.0F ? 3 : 1;  // G0 only
  for (std::size_t i = 0; i < 3 * F; ++i) {
    const float m = mask_of(mask, i % F);
    c.poff_[i] = offset.empty() ? pedestal[i] : pedestal[i] + offset[i];
    c.gfac_[i] = output == Output::adu ? 1.0F * m : reciprocal(gain[i]) * m;
  }
  return c;
}

Calibrator Calibrator::epix10ka(std::span<const float> pedestal, std::span<const float> gain,
                                std::span<const std::uint8_t> config_bits,
                                std::span<const std::uint8_t> mask, std::size_t frame_pixels,
                                Output output, float photon_energy_keV) {
  const std::size_t F = frame_pixels;
  check_size("ePix10ka pedestal", pedestal.size(), 7 * F);
  check_size("ePix10ka gain", gain.size(), 7 * F);
  check_size("ePix10ka config_bits", config_bits.size(), F);
  if (!mask.empty()) check_size("ePix10ka mask", mask.size(), F);
  check_energy(output, photon_energy_keV);
  Calibrator c;
  c.frame_pixels_ = F;
  c.output_ = output;
  c.photon_energy_ = photon_energy_keV;
  c.stages_ = 2;  // stage = data bit 14; bit 15 is unused
  c.stage_of_code_[0] = 0;
  c.stage_of_code_[1] = 1;
  c.stage_of_code_[2] = 0;
  c.stage_of_code_[3] = 1;
  c.data_mask_ = 0x3fff;
  c.slow_bits_ = 0x4000;
  c.poff_.resize(2 * F);
  c.gfac_.resize(2 * F);
  c.cm_flags_.assign(2 * F, 0);
  for (std::size_t p = 0; p < F; ++p) {
    const float m = mask_of(mask, p);
    for (unsigned b14 = 0; b14 < 2; ++b14) {
      const int r = epix_range((config_bits[p] & 0x1fU) | (b14 << 5));
      float ped = 0.0F;
      float fac = 1.0F;
      if (r >= 0) {
        ped = pedestal[static_cast<std::size_t>(r) * F + p];
        fac = reciprocal(gain[static_cast<std::size_t>(r) * F + p]);
      }
      // Common mode uses the high and medium gain ranges (FH, FM, AHL_H, AML_M).
      if (r == 0 || r == 1 || r == 3 || r == 4) c.cm_flags_[b14 * F + p] = m != 0.0F ? 3 : 1;
      c.poff_[b14 * F + p] = ped;
      c.gfac_[b14 * F + p] = output == Output::adu ? 1.0F * m : fac * m;
    }
  }
  return c;
}

Calibrator Calibrator::generic(std::span<const float> pedestal, std::span<const float> gain,
                               std::span<const std::uint8_t> mask, std::size_t frame_pixels,
                               Output output, float photon_energy_keV) {
  const std::size_t F = frame_pixels;
  if (!pedestal.empty()) check_size("pedestal", pedestal.size(), F);
  if (!gain.empty()) check_size("gain", gain.size(), F);
  if (!mask.empty()) check_size("mask", mask.size(), F);
  check_energy(output, photon_energy_keV);
  Calibrator c;
  c.frame_pixels_ = F;
  c.output_ = output;
  c.photon_energy_ = photon_energy_keV;
  c.stages_ = 1;
  c.data_mask_ = 0xffff;
  c.slow_bits_ = 0;
  c.poff_.resize(F);
  c.gfac_.resize(F);
  c.cm_flags_.assign(F, 0);
  for (std::size_t p = 0; p < F; ++p) {
    const float m = mask_of(mask, p);
    c.cm_flags_[p] = m != 0.0F ? 3 : 1;
    c.poff_[p] = pedestal.empty() ? 0.0F : pedestal[p];
    c.gfac_[p] = (output == Output::adu || gain.empty()) ? 1.0F * m : reciprocal(gain[p]) * m;
  }
  return c;
}

void Calibrator::set_common_mode(const CommonMode& cm) {
  const std::size_t rows = cm.module_rows, cols = cm.module_cols;
  if (rows == 0 || cols == 0 || frame_pixels_ % (rows * cols) != 0) {
    throw ValueError("common mode: module shape " + std::to_string(rows) + "x" + std::to_string(cols) +
                     " does not divide a frame of " + std::to_string(frame_pixels_) + " pixels");
  }
  if (cm.bank_rows == 0 || cm.bank_cols == 0 || rows % cm.bank_rows != 0 || cols % cm.bank_cols != 0) {
    throw ValueError("common mode: banks of " + std::to_string(cm.bank_rows) + "x" +
                     std::to_string(cm.bank_cols) + " do not tile modules of " + std::to_string(rows) +
                     "x" + std::to_string(cols));
  }
  if (!(cm.cormax > 0.0F)) throw ValueError("common mode: cormax must be > 0");
  cm_ = cm;
  cm_enabled_ = true;
}

void Calibrator::tables_at(detail::Tables& t, std::size_t p) const {
  for (int st = 0; st < stages_; ++st) {
    const std::size_t o = static_cast<std::size_t>(st) * frame_pixels_ + p;
    t.poff[st] = poff_.data() + o;
    t.gfac[st] = gfac_.data() + o;
  }
  for (int k = 0; k < 4; ++k) t.stage_of_code[k] = stage_of_code_[k];
  t.data_mask = data_mask_;
  t.slow_bits = slow_bits_;
  t.photon_energy = photon_energy_;
}

template <class Out>
std::uint64_t Calibrator::apply_cm(std::span<const std::uint16_t> raw, std::span<Out> out,
                                   int threads) const {
  const std::size_t F = frame_pixels_, R = cm_.module_rows, C = cm_.module_cols;
  const std::size_t BR = cm_.bank_rows, BC = cm_.bank_cols;
  const std::size_t modules = F / (R * C), bands = R / BR;
  const std::size_t frames = raw.size() / F;

  // The ISA's kernels, picked once per call.
  using Gather = std::size_t (*)(const detail::Tables&, const detail::CmFlags&, const std::uint16_t*,
                                 std::size_t, float, float*, std::uint8_t*, float*);
  using Apply = std::uint64_t (*)(const detail::Tables&, const detail::CmFlags&, const float*,
                                  const std::uint8_t*, std::size_t, float, Out*);
  using Median = float (*)(float*, std::size_t, float*);
  Gather gather = &detail::scalar::cm_gather;
  Median median_fn = &detail::scalar::median_of;
  Apply apply_fn = nullptr;
  const Isa isa = active_isa();
  if (isa == Isa::avx512) {
    gather = &detail::avx512::cm_gather;
    median_fn = &detail::avx512::median_of;
  } else if (isa == Isa::avx2) {
    gather = &detail::avx2::cm_gather;
    median_fn = &detail::avx2::median_of;
  }
  if constexpr (std::is_same_v<Out, float>) {
    apply_fn = isa == Isa::avx512 ? &detail::avx512::cm_apply_f32
               : isa == Isa::avx2 ? &detail::avx2::cm_apply_f32 : &detail::scalar::cm_apply_f32;
  } else if constexpr (std::is_same_v<Out, std::uint16_t>) {
    apply_fn = isa == Isa::avx512 ? &detail::avx512::cm_apply_u16
               : isa == Isa::avx2 ? &detail::avx2::cm_apply_u16 : &detail::scalar::cm_apply_u16;
  } else {
    apply_fn = isa == Isa::avx512 ? &detail::avx512::cm_apply_u32
               : isa == Isa::avx2 ? &detail::avx2::cm_apply_u32 : &detail::scalar::cm_apply_u32;
  }

  std::atomic<std::uint64_t> invalid_total{0};
  parallel_for(frames * modules * bands, threads, [&](std::size_t task) {
    // Scratch for one bank (cache-sized), reused by this thread for every bank and call;
    // 16 floats of slack for full-vector stores of compressed candidates.
    thread_local std::vector<float> xbuf_v, cand_v, median_v;
    thread_local std::vector<std::uint8_t> sbuf_v;
    if (xbuf_v.size() < BR * BC) {
      xbuf_v.resize(BR * BC);
      cand_v.resize(BR * BC + 16);
      median_v.resize(2 * BR * BC + 32);
      sbuf_v.resize(BR * BC);
    }
    float* const xbuf = xbuf_v.data();
    float* const cand = cand_v.data();
    float* const median_scratch = median_v.data();
    std::uint8_t* const sbuf = sbuf_v.data();

    const std::size_t frame = task / (modules * bands);
    const std::size_t module = (task / bands) % modules;
    const std::size_t r0 = (task % bands) * BR;
    const std::uint16_t* const fr = raw.data() + frame * F;
    Out* const fo = out.data() + frame * F;
    detail::Tables t{};
    detail::CmFlags fl{};
    auto at = [&](std::size_t p) {  // tables offset to pixel p of the frame
      tables_at(t, p);
      for (int st = 0; st < stages_; ++st) fl.flags[st] = cm_flags_.data() + static_cast<std::size_t>(st) * F + p;
    };
    std::uint64_t invalid = 0;
    for (std::size_t c0 = 0; c0 < C; c0 += BC) {
      std::size_t n = 0;
      for (std::size_t r = 0; r < BR; ++r) {
        const std::size_t base = module * R * C + (r0 + r) * C + c0;
        at(base);
        n += gather(t, fl, fr + base, BC, cm_.threshold, xbuf + r * BC, sbuf + r * BC, cand + n);
      }
      float cm = 0.0F;
      if (n > 0 && n >= cm_.min_pixels) {
        if (cm_.method == CommonMode::Method::median) {
          cm = median_fn(cand, n, median_scratch);
        } else {
          double sum = 0.0;
          for (std::size_t k = 0; k < n; ++k) sum += cand[k];
          cm = static_cast<float>(sum / static_cast<double>(n));
        }
        if (!(std::fabs(cm) < cm_.cormax)) cm = 0.0F;
      }
      for (std::size_t r = 0; r < BR; ++r) {
        const std::size_t base = module * R * C + (r0 + r) * C + c0;
        at(base);
        invalid += apply_fn(t, fl, xbuf + r * BC, sbuf + r * BC, BC, cm, fo + base);
      }
    }
    invalid_total.fetch_add(invalid, std::memory_order_relaxed);
  });
  return invalid_total.load();
}

template <class Out>
std::uint64_t Calibrator::apply_u16(std::span<const std::uint16_t> raw, std::span<Out> out,
                                    int threads) const {
  check_output<Out>(output_, frame_pixels_, raw.size(), out.size());
  if (cm_enabled_) return apply_cm(raw, out, threads);
  const Kernel<Out> kernel = pick<Out>();
  std::atomic<std::uint64_t> invalid{0};
  for_segments(raw.size(), frame_pixels_, threads,
               [&](std::size_t i, std::size_t p, std::size_t len, std::size_t range_len) {
                 detail::Tables t{};
                 tables_at(t, p);
                 const bool stream = range_len * sizeof(Out) >= kStreamBytes;
                 invalid.fetch_add(kernel(t, raw.data() + i, out.data() + i, len, stream),
                                   std::memory_order_relaxed);
               });
  return invalid.load();
}

template <class Out>
std::uint64_t Calibrator::apply_frames_t(std::span<const std::span<const std::uint16_t>> raws, std::span<Out> out,
                                         int threads) const {
  const std::size_t F = frame_pixels_, frames = raws.size();
  check_output<Out>(output_, F, frames * F, out.size());
  for (std::size_t f = 0; f < frames; ++f) {
    if (raws[f].size() != F) {
      throw ValueError("calibration: frame " + std::to_string(f) + " has " + std::to_string(raws[f].size()) +
                       " pixels, expected " + std::to_string(F));
    }
  }
  if (cm_enabled_) throw ValueError("calibration: apply_frames does not do common mode (use apply per frame)");
  const Kernel<Out> kernel = pick<Out>();
  // 16 Ki pixels a block: its stage-0 constants (128 KiB) stay in L2 while every frame's
  // block is calibrated
  constexpr std::size_t kBlock = 16384;
  std::atomic<std::uint64_t> invalid{0};
  const bool stream = frames * F * sizeof(Out) >= kStreamBytes;
  parallel_ranges(F, threads, 64, [&](std::size_t b, std::size_t e) {
    detail::Tables t{};
    std::uint64_t bad = 0;
    for (std::size_t p = b; p < e; p += kBlock) {
      const std::size_t len = std::min(kBlock, e - p);
      tables_at(t, p);
      for (std::size_t f = 0; f < frames; ++f) bad += kernel(t, raws[f].data() + p, out.data() + f * F + p, len, stream);
    }
    invalid.fetch_add(bad, std::memory_order_relaxed);
  });
  return invalid.load();
}

std::uint64_t Calibrator::apply_frames(std::span<const std::span<const std::uint16_t>> raws,
                                       std::span<std::uint16_t> out, int threads) const {
  return apply_frames_t(raws, out, threads);
}
std::uint64_t Calibrator::apply_frames(std::span<const std::span<const std::uint16_t>> raws,
                                       std::span<std::uint32_t> out, int threads) const {
  return apply_frames_t(raws, out, threads);
}
std::uint64_t Calibrator::apply_frames(std::span<const std::span<const std::uint16_t>> raws, std::span<float> out,
                                       int threads) const {
  return apply_frames_t(raws, out, threads);
}

template <class In, class Out>
void Calibrator::apply_other(std::span<const In> raw, std::span<Out> out, int threads) const {
  if (stages_ != 1) throw ValueError("calibration: int16/float32 input needs a Generic calibrator");
  if (cm_enabled_) throw ValueError("calibration: common mode needs uint16 input");
  check_output<Out>(output_, frame_pixels_, raw.size(), out.size());
  const float e = photon_energy_;
  for_segments(raw.size(), frame_pixels_, threads,
               [&](std::size_t i, std::size_t p, std::size_t len, std::size_t) {
                 const In* x = raw.data() + i;
                 Out* o = out.data() + i;
                 const float* po = poff_.data() + p;
                 const float* gf = gfac_.data() + p;
                 for (std::size_t k = 0; k < len; ++k) {
                   const float v = (static_cast<float>(x[k]) - po[k]) * gf[k];
                   if constexpr (std::is_same_v<Out, float>) {
                     o[k] = v;
                   } else if constexpr (std::is_same_v<Out, std::uint16_t>) {
                     o[k] = static_cast<std::uint16_t>(detail::photons_of(v, e, detail::kLimitU16, 0xffffU));
                   } else {
                     o[k] = detail::photons_of(v, e, detail::kLimitU32, 0xffffffffU);
                   }
                 }
               });
}

std::uint64_t Calibrator::apply(std::span<const std::uint16_t> raw, std::span<float> out, int threads) const {
  return apply_u16(raw, out, threads);
}
std::uint64_t Calibrator::apply(std::span<const std::uint16_t> raw, std::span<std::uint16_t> out,
                                int threads) const {
  return apply_u16(raw, out, threads);
}
std::uint64_t Calibrator::apply(std::span<const std::uint16_t> raw, std::span<std::uint32_t> out,
                                int threads) const {
  return apply_u16(raw, out, threads);
}
void Calibrator::apply(std::span<const std::int16_t> raw, std::span<float> out, int threads) const {
  apply_other(raw, out, threads);
}
void Calibrator::apply(std::span<const float> raw, std::span<float> out, int threads) const {
  apply_other(raw, out, threads);
}
void Calibrator::apply(std::span<const std::int16_t> raw, std::span<std::uint16_t> out, int threads) const {
  apply_other(raw, out, threads);
}
void Calibrator::apply(std::span<const float> raw, std::span<std::uint16_t> out, int threads) const {
  apply_other(raw, out, threads);
}
void Calibrator::apply(std::span<const std::int16_t> raw, std::span<std::uint32_t> out, int threads) const {
  apply_other(raw, out, threads);
}
void Calibrator::apply(std::span<const float> raw, std::span<std::uint32_t> out, int threads) const {
  apply_other(raw, out, threads);
}

}  // namespace lclstream::calib
