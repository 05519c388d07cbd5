#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lclstream/calib.hpp"
#include "lclstream/error.hpp"
#include "lclstream/isa.hpp"

using namespace lclstream;
using namespace lclstream::calib;

namespace {

struct JfConsts {
  std::vector<float> ped, gain, off;
  std::vector<std::uint8_t> mask;
};

JfConsts make_consts(std::size_t F, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> ped(500.0F, 3000.0F), g(0.5F, 50.0F), off(-20.0F, 20.0F);
  JfConsts c;
  for (std::size_t i = 0; i < 3 * F; ++i) {
    c.ped.push_back(ped(rng));
    c.gain.push_back(rng() % 50 == 0 ? 0.0F : (i < F ? 40.0F : i < 2 * F ? -1.5F : -0.1F) * g(rng) / 25.0F);
    c.off.push_back(off(rng));
  }
  for (std::size_t i = 0; i < F; ++i) c.mask.push_back(rng() % 20 == 0 ? 0 : 1);
  return c;
}

std::vector<std::uint16_t> make_raw(std::size_t n, std::uint32_t seed, int slow_percent) {
  std::mt19937 rng(seed);
  std::vector<std::uint16_t> raw(n);
  for (auto& r : raw) {
    std::uint16_t code = 0;
    if (static_cast<int>(rng() % 100) < slow_percent) code = static_cast<std::uint16_t>(rng() % 4);
    r = static_cast<std::uint16_t>((code << 14) | (rng() & 0x3fff));
  }
  return raw;
}

// Independent statement of psana's formula (not the kernel's helper).
float jf_ref(const JfConsts& c, std::size_t F, std::uint16_t raw, std::size_t p) {
  const unsigned bits = raw >> 14;
  if (bits == 2) return 0.0F;
  const std::size_t g = bits == 3 ? 2 : bits;
  const float poff = c.ped[g * F + p] + c.off[g * F + p];
  float gfac = c.gain[g * F + p] == 0.0F ? 0.0F : 1.0F / c.gain[g * F + p];
  gfac = gfac * static_cast<float>(c.mask[p] != 0);
  return (static_cast<float>(raw & 0x3fff) - poff) * gfac;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

struct IsaGuard {
  Isa saved = active_isa();
  ~IsaGuard() { set_isa(saved); }
};

}  // namespace

TEST_CASE("Jungfrau keV matches psana's formula bit for bit on every ISA") {
  IsaGuard guard;
  const std::size_t F = 4096 + 37;  // odd size: vector heads and tails
  const auto c = make_consts(F, 1);
  const auto cal = Calibrator::jungfrau(c.ped, c.gain, c.off, c.mask, F, Output::kev);
  for (int slow : {0, 3, 100}) {
    const auto raw = make_raw(3 * F, static_cast<std::uint32_t>(slow + 7), slow);
    std::vector<float> want(raw.size());
    std::uint64_t want_invalid = 0;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      want[i] = jf_ref(c, F, raw[i], i % F);
      want_invalid += (raw[i] >> 14) == 2;
    }
    for (Isa isa : available_isas()) {
      set_isa(isa);
      for (int threads : {1, 2}) {
        std::vector<float> got(raw.size(), -1.0F);
        const auto inv = cal.apply(raw, got, threads);
        INFO("isa " << isa_name(isa) << " slow% " << slow << " threads " << threads);
        CHECK(inv == want_invalid);
        CHECK(same_bits(got, want));
      }
    }
  }
}

TEST_CASE("photon counts round half to even, clamp at 0 and saturate, on every ISA") {
  IsaGuard guard;
  const std::size_t F = 1000;
  std::vector<float> ped(3 * F, 0.0F), gain(3 * F, 1.0F);
  for (std::size_t i = 0; i < F; ++i) ped[i] = static_cast<float>(i % 7) * 0.5F;  // halves
  const auto raw = make_raw(F, 3, 10);
  for (Isa isa : available_isas()) {
    set_isa(isa);
    for (float e : {1.0F, 0.001F, 1e-7F}) {
      const auto c16 = Calibrator::jungfrau(ped, gain, {}, {}, F, Output::photons, e);
      const auto ckev = Calibrator::jungfrau(ped, gain, {}, {}, F, Output::kev);
      std::vector<float> kev(F);
      ckev.apply(raw, kev, 1);
      std::vector<std::uint16_t> p16(F);
      std::vector<std::uint32_t> p32(F);
      c16.apply(raw, p16, 1);
      c16.apply(raw, p32, 1);
      for (std::size_t i = 0; i < F; ++i) {
        const double v = static_cast<double>(kev[i] / e);
        const double r = v <= 0 ? 0.0 : std::nearbyint(v);
        INFO("isa " << isa_name(isa) << " e " << e << " i " << i << " kev " << kev[i]);
        REQUIRE(p16[i] == static_cast<std::uint16_t>(std::min(r, 65535.0)));
        REQUIRE(p32[i] == static_cast<std::uint32_t>(std::min(r, 4294967295.0)));
      }
    }
  }
}

TEST_CASE("ePix10ka ranges follow psana's first-match rules") {
  IsaGuard guard;
  const std::size_t F = 64 * 3 + 5;
  std::vector<float> ped(7 * F), gain(7 * F);
  for (std::size_t r = 0; r < 7; ++r) {
    for (std::size_t p = 0; p < F; ++p) {
      ped[r * F + p] = static_cast<float>(100 * (r + 1)) + static_cast<float>(p) * 0.25F;
      gain[r * F + p] = static_cast<float>(r + 1) * 0.75F;
    }
  }
  std::vector<std::uint8_t> cb(F), mask(F, 1);
  for (std::size_t p = 0; p < F; ++p) cb[p] = static_cast<std::uint8_t>((p % 8) << 2);
  mask[5] = 0;
  const auto cal = Calibrator::epix10ka(ped, gain, cb, mask, F, Output::kev);
  auto raw = make_raw(2 * F, 9, 50);
  std::vector<float> want(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const std::size_t p = i % F;
    const unsigned c = cb[p] | ((raw[i] >> 14) & 1U) << 5;
    int r = -1;
    const int rules[7][2] = {{28, 28}, {28, 12}, {12, 8}, {60, 16}, {60, 0}, {60, 48}, {60, 32}};
    for (int k = 0; k < 7 && r < 0; ++k) {
      if ((c & static_cast<unsigned>(rules[k][0])) == static_cast<unsigned>(rules[k][1])) r = k;
    }
    const float pd = r < 0 ? 0.0F : ped[static_cast<std::size_t>(r) * F + p];
    const float gf = r < 0 ? 1.0F : 1.0F / gain[static_cast<std::size_t>(r) * F + p];
    want[i] = (static_cast<float>(raw[i] & 0x3fff) - pd) * gf * static_cast<float>(mask[p]);
  }
  for (Isa isa : available_isas()) {
    set_isa(isa);
    std::vector<float> got(raw.size());
    CHECK(cal.apply(raw, got, 2) == 0);
    INFO("isa " << isa_name(isa));
    CHECK(same_bits(got, want));
  }
}

TEST_CASE("generic calibration of uint16, int16 and float32 input") {
  const std::size_t F = 100;
  std::vector<float> ped(F, 10.5F), gain(F, 2.0F);
  gain[3] = 0.0F;
  const auto cal = Calibrator::generic(ped, gain, {}, F, Output::kev);
  std::vector<std::int16_t> x(F);
  std::vector<float> xf(F);
  std::vector<std::uint16_t> xu(F);
  for (std::size_t i = 0; i < F; ++i) {
    x[i] = static_cast<std::int16_t>(static_cast<int>(i) * 37 - 1000);
    xf[i] = static_cast<float>(x[i]);
    xu[i] = static_cast<std::uint16_t>(i * 600);
  }
  std::vector<float> a(F), b(F), u(F);
  cal.apply(std::span<const std::int16_t>(x), std::span<float>(a), 1);
  cal.apply(std::span<const float>(xf), std::span<float>(b), 1);
  cal.apply(std::span<const std::uint16_t>(xu), std::span<float>(u), 1);
  for (std::size_t i = 0; i < F; ++i) {
    const float gf = i == 3 ? 0.0F : 0.5F;
    CHECK(a[i] == (static_cast<float>(x[i]) - 10.5F) * gf);
    CHECK(u[i] == (static_cast<float>(xu[i]) - 10.5F) * gf);
  }
  CHECK(same_bits(a, b));
}

TEST_CASE("calibration rejects bad sizes, modes and photon energies") {
  const std::size_t F = 16;
  std::vector<float> c3(3 * F, 1.0F), c2(2 * F, 1.0F);
  CHECK_THROWS_AS(Calibrator::jungfrau(c2, c3, {}, {}, F, Output::kev), ValueError);
  CHECK_THROWS_AS(Calibrator::jungfrau(c3, c3, {}, {}, F, Output::photons, 0.0F), ValueError);
  const auto cal = Calibrator::jungfrau(c3, c3, {}, {}, F, Output::kev);
  std::vector<std::uint16_t> raw(F + 1);
  std::vector<float> out(F + 1);
  CHECK_THROWS_AS(cal.apply(raw, out, 1), ValueError);
  raw.resize(F);
  CHECK_THROWS_AS(cal.apply(raw, out, 1), ValueError);
  std::vector<std::uint16_t> p(F);
  CHECK_THROWS_AS(cal.apply(raw, p, 1), ValueError);
}

TEST_CASE("common mode subtracts each bank's median of G0 pixels below the threshold") {
  const std::size_t rows = 2, cols = 128, F = rows * cols;
  std::vector<float> ped(3 * F, 1000.0F), gain(3 * F, 1.0F);
  std::vector<std::uint16_t> raw(F);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols; ++c) {
      // bank (r, c / 64) has offset 5 * (bank + 1) plus 0..3 noise; every 16th pixel is a photon
      const std::size_t bank = r * 2 + c / 64;
      raw[r * cols + c] = static_cast<std::uint16_t>(1000 + 5 * (bank + 1) + c % 4 + (c % 16 == 0 ? 500 : 0));
    }
  }
  raw[3] = static_cast<std::uint16_t>(raw[3] | 0x4000);  // a G1 pixel: not a candidate, not corrected
  auto cal = Calibrator::jungfrau(ped, gain, {}, {}, F, Output::kev);
  CommonMode cm;
  cm.module_rows = rows;
  cm.module_cols = cols;
  cm.bank_rows = 1;
  cm.bank_cols = 64;
  cm.threshold = 100.0F;
  cm.cormax = 18.0F;  // the last bank's median (20 + 2) is too large: left alone
  cm.min_pixels = 10;
  cal.set_common_mode(cm);
  std::vector<float> out(F);
  cal.apply(raw, out, 2);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols; ++c) {
      const std::size_t p = r * cols + c, bank = r * 2 + c / 64;
      const float x = static_cast<float>(raw[p] & 0x3fff) - 1000.0F;
      // candidates per bank: 12 at +0 (4 photons excluded), 16 at +1, 16 at +2, 16 (15) at +3
      const float median = static_cast<float>(5 * (bank + 1)) + 2.0F;
      float want = bank == 3 ? x : x - median;
      if (p == 3) want = x;  // G1: no correction
      INFO("pixel " << p);
      REQUIRE(out[p] == want);
    }
  }
  cm.bank_cols = 48;
  CHECK_THROWS_AS(cal.set_common_mode(cm), ValueError);
}

TEST_CASE("common mode gives the same bits on every ISA (median and mean, all bank shapes)") {
  IsaGuard guard;
  const std::size_t rows = 32, cols = 128, modules = 2, F = modules * rows * cols;
  auto c = make_consts(F, 5);
  for (std::size_t i = 0; i < F; ++i) c.ped[i] = std::round(c.ped[i]);  // ties among candidates
  std::mt19937 rng(17);
  std::normal_distribution<float> noise(0.0F, 3.0F);
  std::vector<std::uint16_t> raw(2 * F);
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const float v = c.ped[i % F] + c.off[i % F] + noise(rng) + static_cast<float>((i / cols) % 7);
    auto w = static_cast<std::uint16_t>(std::clamp(v, 0.0F, 16383.0F));
    if (rng() % 50 == 0) w = static_cast<std::uint16_t>(w | ((rng() % 4) << 14));
    if (rng() % 40 == 0) w = static_cast<std::uint16_t>(std::min(16383, w + 300));
    raw[i] = w;
  }
  const std::size_t banks[][2] = {{1, 64}, {8, 32}, {16, 64}, {4, 16}, {1, 127 + 1}};
  for (const auto& b : banks) {
    for (auto method : {CommonMode::Method::median, CommonMode::Method::mean}) {
      auto kev = Calibrator::jungfrau(c.ped, c.gain, c.off, c.mask, F, Output::kev);
      auto ph = Calibrator::jungfrau(c.ped, c.gain, c.off, c.mask, F, Output::photons, 0.05F);
      CommonMode cm;
      cm.method = method;
      cm.module_rows = rows;
      cm.module_cols = cols;
      cm.bank_rows = b[0];
      cm.bank_cols = b[1];
      cm.threshold = 50.0F;
      cm.cormax = 30.0F;
      cm.min_pixels = 4;
      kev.set_common_mode(cm);
      ph.set_common_mode(cm);
      set_isa(Isa::scalar);
      std::vector<float> want(raw.size());
      std::vector<std::uint16_t> want_ph(raw.size());
      const auto inv = kev.apply(raw, want, 1);
      ph.apply(raw, want_ph, 1);
      for (Isa isa : available_isas()) {
        set_isa(isa);
        std::vector<float> got(raw.size());
        std::vector<std::uint16_t> got_ph(raw.size());
        INFO("isa " << isa_name(isa) << " bank " << b[0] << "x" << b[1] << " mean " << (method == CommonMode::Method::mean));
        CHECK(kev.apply(raw, got, 2) == inv);
        ph.apply(raw, got_ph, 2);
        CHECK(same_bits(got, want));
        CHECK(same_bits(got_ph, want_ph));
      }
    }
  }
}

TEST_CASE("apply_frames: separate frames in one call give psana's formula, on every ISA") {
  IsaGuard guard;
  const std::size_t F = 2 * 16384 + 4096 + 37;  // two pixel blocks, a ragged third, a tail
  const auto c = make_consts(F, 5);
  const auto cal = Calibrator::jungfrau(c.ped, c.gain, c.off, c.mask, F, Output::kev);
  std::vector<std::vector<std::uint16_t>> raws;
  for (std::uint32_t s = 0; s < 4; ++s) raws.push_back(make_raw(F, 20 + s, 5));
  std::vector<std::span<const std::uint16_t>> spans(raws.begin(), raws.end());
  std::vector<float> want(4 * F);
  std::uint64_t want_invalid = 0;
  for (std::size_t f = 0; f < 4; ++f) {
    for (std::size_t p = 0; p < F; ++p) {
      want[f * F + p] = jf_ref(c, F, raws[f][p], p);
      want_invalid += (raws[f][p] >> 14) == 2;
    }
  }
  for (Isa isa : available_isas()) {
    set_isa(isa);
    for (int threads : {1, 2}) {
      std::vector<float> got(4 * F, -1.0F);
      INFO("isa " << isa_name(isa) << " threads " << threads);
      CHECK(cal.apply_frames(spans, got, threads) == want_invalid);
      CHECK(same_bits(got, want));
    }
  }
  std::vector<float> small(3 * F);
  CHECK_THROWS_AS(cal.apply_frames(spans, small), ValueError);  // out holds 3 frames, not 4
  spans[2] = spans[2].first(F - 1);
  std::vector<float> out(4 * F);
  CHECK_THROWS_AS(cal.apply_frames(spans, out), ValueError);  // a short frame
}
