#pragma once
// Detector calibration: raw ADC words -> float32 keV / ADU or photon counts.
//
// Every detector reduces to the same per-pixel formula, prepared once per run:
//   stage  = stage_of_code[raw >> 14]         (which gain stage's constants apply)
//   data   = float(raw & data_mask)
//   out    = (data - poff[stage]) * gfac[stage]      float32, -ffp-contract=off
//   photon = max(0, rint(out / photon_energy))       round half to even, saturating
// with poff = pedestal (+ offset) and gfac = 1/gain (0 where gain == 0) with the mask
// folded in, both float32, exactly as psana computes them (docs/calibration.md).
// Constants are stored planar (one contiguous table per stage), so the common case (every
// pixel of a group in stage 0) reads two contiguous streams; rare stage 1/2 lanes are patched.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace lclstream::calib {

namespace detail {
struct Tables;  // the kernels' view of the constants (calib/kernels.hpp)

/// Storage for large tables (1 MiB and up): 2 MiB-aligned and advised onto transparent
/// huge pages. The kernels stream the constant tables from memory; on 4 KiB pages every
/// page edge stops the hardware prefetchers and costs a TLB miss (numpy arrays, the raw
/// input and output, already get huge pages). Throws std::bad_alloc.
void* table_allocate(std::size_t bytes);
void table_free(void* p) noexcept;

template <class T>
struct TableAllocator {
  using value_type = T;
  TableAllocator() = default;
  template <class U>
  explicit TableAllocator(const TableAllocator<U>& /*other*/) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(table_allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t /*n*/) noexcept { table_free(p); }
  friend bool operator==(const TableAllocator&, const TableAllocator&) noexcept { return true; }
};
}  // namespace detail

/// What a prepared calibration produces.
enum class Output : std::uint8_t {
  kev,      ///< float32, (data - poff) * (1/gain) with gain in ADU/keV
  adu,      ///< float32, (data - poff) with the mask applied (no gain)
  photons,  ///< uint16 or uint32 photon counts: max(0, rint(keV / photon_energy))
};

/// A stage code (raw >> 14) that marks an invalid pixel: output 0, counted.
inline constexpr std::uint8_t kInvalidStage = 3;

/// Common-mode correction (optional; in ADU, before the gain factor). The frame is tiled into
/// banks of bank_rows x bank_cols pixels within each module; per bank, the median (or mean) of
/// the candidate pixels (gain stage eligible: Jungfrau G0, ePix high/medium ranges; unmasked;
/// data - poff < threshold) is subtracted from every eligible pixel of the bank when at least
/// min_pixels were used and |cm| < cormax (psana's rule). Each bank is computed and written in
/// one go from a cache-sized scratch block: no second pass over the frame.
struct CommonMode {
  enum class Method : std::uint8_t { median, mean };
  Method method = Method::median;
  std::size_t module_rows = 0;  ///< module geometry: frame = modules x module_rows x module_cols
  std::size_t module_cols = 0;
  std::size_t bank_rows = 1;  ///< 1 = per row within bank_cols-wide banks
  std::size_t bank_cols = 64;
  float threshold = 100.0F;
  float cormax = 100.0F;
  std::size_t min_pixels = 10;
};

/// Prepared constants for one detector (all frames of a run share them).
class Calibrator {
 public:
  /// Jungfrau: pedestal/gain/offset (3 * frame_pixels, G0 G1 G2 planes), offset may be empty,
  /// mask (frame_pixels, nonzero = good) may be empty. Gain bits 0->G0, 1->G1, 3->G2, 2 invalid.
  static Calibrator jungfrau(std::span<const float> pedestal, std::span<const float> gain,
                             std::span<const float> offset, std::span<const std::uint8_t> mask,
                             std::size_t frame_pixels, Output output, float photon_energy_keV = 0.0F);

  /// ePix10ka/ePix10k2M: 7 gain ranges (7 * frame_pixels, order FH FM FL AHL_H AML_M AHL_L
  /// AML_L), per-pixel configuration bits (frame_pixels; bits 2,3,4 as in psana), mask may
  /// be empty. Range = first match of psana's rules on cb | (raw bit 14 -> bit 5); no match:
  /// pedestal 0, factor 1.
  static Calibrator epix10ka(std::span<const float> pedestal, std::span<const float> gain,
                             std::span<const std::uint8_t> config_bits,
                             std::span<const std::uint8_t> mask, std::size_t frame_pixels,
                             Output output, float photon_energy_keV = 0.0F);

  /// One gain stage: out = (x - pedestal) * (1/gain) * mask. gain (ADU/keV) and mask may be
  /// empty (gain 1, all good). Raw words are used whole (no gain bits).
  static Calibrator generic(std::span<const float> pedestal, std::span<const float> gain,
                            std::span<const std::uint8_t> mask, std::size_t frame_pixels,
                            Output output, float photon_energy_keV = 0.0F);

  /// Enables common mode (ValueError if the banks do not tile the modules).
  void set_common_mode(const CommonMode& cm);
  bool has_common_mode() const noexcept { return cm_enabled_; }

  std::size_t frame_pixels() const noexcept { return frame_pixels_; }
  Output output() const noexcept { return output_; }
  float photon_energy() const noexcept { return photon_energy_; }

  /// Calibrates raw (a whole number of frames) into out (same element count). float32 out
  /// needs Output::kev/adu, uint16/uint32 out needs Output::photons. Returns the number of
  /// invalid-gain pixels. threads = 0: all cores. Throws ValueError on size/mode mismatch.
  std::uint64_t apply(std::span<const std::uint16_t> raw, std::span<float> out, int threads = 0) const;
  std::uint64_t apply(std::span<const std::uint16_t> raw, std::span<std::uint16_t> out, int threads = 0) const;
  std::uint64_t apply(std::span<const std::uint16_t> raw, std::span<std::uint32_t> out, int threads = 0) const;
  /// Frames that lie apart (one raw array per event) into one stack `out` (frames x pixels,
  /// frame i at i * frame_pixels): pixel blocks outer, frames inner, so each block's constants
  /// are read from memory once per call instead of once per frame. Each raw span must hold
  /// frame_pixels words. Same output as apply() on each frame; common mode is not supported
  /// here (ValueError). Returns the invalid-gain pixel count.
  std::uint64_t apply_frames(std::span<const std::span<const std::uint16_t>> raws, std::span<std::uint16_t> out,
                             int threads = 0) const;
  std::uint64_t apply_frames(std::span<const std::span<const std::uint16_t>> raws, std::span<std::uint32_t> out,
                             int threads = 0) const;
  std::uint64_t apply_frames(std::span<const std::span<const std::uint16_t>> raws, std::span<float> out,
                             int threads = 0) const;
  /// Generic only: signed or float input (no gain bits).
  void apply(std::span<const std::int16_t> raw, std::span<float> out, int threads = 0) const;
  void apply(std::span<const float> raw, std::span<float> out, int threads = 0) const;
  void apply(std::span<const std::int16_t> raw, std::span<std::uint16_t> out, int threads = 0) const;
  void apply(std::span<const float> raw, std::span<std::uint16_t> out, int threads = 0) const;
  void apply(std::span<const std::int16_t> raw, std::span<std::uint32_t> out, int threads = 0) const;
  void apply(std::span<const float> raw, std::span<std::uint32_t> out, int threads = 0) const;

 private:
  Calibrator() = default;
  template <class Out>
  std::uint64_t apply_u16(std::span<const std::uint16_t> raw, std::span<Out> out, int threads) const;
  /// The kernels' tables for the run of pixels starting at pixel p of a frame.
  void tables_at(detail::Tables& t, std::size_t p) const;
  template <class Out>
  std::uint64_t apply_frames_t(std::span<const std::span<const std::uint16_t>> raws, std::span<Out> out,
                               int threads) const;
  template <class Out>
  std::uint64_t apply_cm(std::span<const std::uint16_t> raw, std::span<Out> out, int threads) const;
  template <class In, class Out>
  void apply_other(std::span<const In> raw, std::span<Out> out, int threads) const;

  std::size_t frame_pixels_ = 0;
  Output output_ = Output::kev;
  float photon_energy_ = 0.0F;
  int stages_ = 1;
  std::uint8_t stage_of_code_[4] = {0, 0, 0, 0};
  std::uint16_t data_mask_ = 0xffff;
  std::uint16_t slow_bits_ = 0;
  std::vector<float, detail::TableAllocator<float>> poff_;  // stages_ * frame_pixels, planar
  std::vector<float, detail::TableAllocator<float>> gfac_;
  // Common mode: per stage plane, bit 0 = gain stage takes the correction, bit 1 = candidate
  // (eligible and unmasked).
  std::vector<std::uint8_t> cm_flags_;
  CommonMode cm_{};
  bool cm_enabled_ = false;
};

}  // namespace lclstream::calib
