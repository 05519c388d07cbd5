#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "lclstream/error.hpp"
#include "lclstream/isa.hpp"
#include "lclstream/peakfinder8.hpp"

using namespace lclstream;
using namespace lclstream::peaks;

namespace {

Peakfinder8Params layout(int nx, int ny, int ax, int ay) {
  Peakfinder8Params p;
  p.asic_nx = nx;
  p.asic_ny = ny;
  p.nasics_x = ax;
  p.nasics_y = ay;
  p.adc_threshold = 5.0f;
  p.minimum_snr = 5.0f;
  p.min_pixel_count = 1;
  p.max_pixel_count = 20;
  return p;
}

}  // namespace

TEST_CASE("peakfinder8 finds a 2x2 spot on a flat background at its centre of mass") {
  const auto p = layout(32, 32, 2, 2);
  std::vector<float> radius(64 * 64), frame(64 * 64);
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.0f, 0.1f);
  for (std::size_t i = 0; i < frame.size(); ++i) {
    const float y = static_cast<float>(i / 64), x = static_cast<float>(i % 64);
    radius[i] = std::hypot(x - 30.0f, y - 33.0f);
    frame[i] = 1.0f + noise(rng);
  }
  for (int y : {40, 41})
    for (int x : {10, 11}) frame[static_cast<std::size_t>(y * 64 + x)] = 100.0f;
  Peakfinder8 f(p, 64, 64, radius, {});
  PeakList out;
  f.find(frame, out, 1);
  REQUIRE(out.events() == 1);
  REQUIRE(out.size() == 1);
  CHECK(out.npix[0] == 4);
  CHECK(out.x[0] == Approx(10.5f).margin(0.01));
  CHECK(out.y[0] == Approx(40.5f).margin(0.01));
  CHECK(out.total_intensity[0] == Approx(4 * 99.0f).epsilon(0.01));
}

TEST_CASE("peakfinder8 gives the same bits on every ISA and thread count") {
  const auto p = layout(64, 32, 4, 8);
  const std::size_t rows = 256, cols = 256;
  std::vector<float> radius(rows * cols), frames(3 * rows * cols);
  std::mt19937 rng(5);
  std::normal_distribution<float> noise(10.0f, 1.0f);
  std::uniform_int_distribution<std::size_t> pos(0, rows * cols - 1);
  for (std::size_t i = 0; i < radius.size(); ++i)
    radius[i] = std::hypot(static_cast<float>(i % cols) - 100.0f, static_cast<float>(i / cols) - 120.0f);
  for (auto& v : frames) v = noise(rng);
  for (int k = 0; k < 300; ++k) {
    const std::size_t c = pos(rng) % (frames.size() - cols - 2);
    frames[c] += 60.0f;
    frames[c + 1] += 40.0f;
    frames[c + cols] += 30.0f;
  }
  std::vector<std::uint8_t> mask(rows * cols, 1);
  for (std::size_t i = 0; i < mask.size(); i += 97) mask[i] = 0;
  Peakfinder8 f(p, rows, cols, radius, mask);
  const Isa before = active_isa();
  std::vector<PeakList> got;
  for (Isa isa : available_isas()) {
    set_isa(isa);
    for (int threads : {1, 2}) {
      got.emplace_back();
      f.find(frames, got.back(), threads);
    }
  }
  set_isa(before);
  REQUIRE(got[0].size() > 100);
  for (const auto& g : got) {
    CHECK(g.offsets == got[0].offsets);
    CHECK(g.x == got[0].x);
    CHECK(g.total_intensity == got[0].total_intensity);
    CHECK(g.sigma == got[0].sigma);
  }
}

TEST_CASE("peakfinder8 photon counts: the histogram path gives the float path's bits") {
  // Sparse counts, spots past the histogram (>= 64), and a bright ring whose squared counts
  // sum past 2^24 (its block must take the ordered path); every ISA, uint16 and uint32.
  auto p = layout(64, 32, 4, 8);
  p.adc_threshold = 2.0f;
  const std::size_t rows = 256, cols = 256, n = rows * cols;
  std::vector<float> radius(n);
  for (std::size_t i = 0; i < n; ++i)
    radius[i] = std::hypot(static_cast<float>(i % cols) - 100.0f, static_cast<float>(i / cols) - 120.0f);
  std::mt19937 rng(8);
  std::poisson_distribution<int> bg(0.1), ring(300.0);
  std::uniform_int_distribution<std::size_t> pos(0, n - cols - 2);
  std::vector<std::uint16_t> c16(n);
  for (std::size_t i = 0; i < n; ++i) c16[i] = static_cast<std::uint16_t>(std::rint(radius[i]) == 60.0f ? ring(rng) : bg(rng));
  for (int k = 0; k < 60; ++k) {
    const std::size_t c = pos(rng);
    c16[c] = static_cast<std::uint16_t>(c16[c] + 200);
    c16[c + 1] = static_cast<std::uint16_t>(c16[c + 1] + 40);
    c16[c + cols] = static_cast<std::uint16_t>(c16[c + cols] + 9);
  }
  std::vector<std::uint32_t> c32(c16.begin(), c16.end());
  std::vector<float> f32(c16.begin(), c16.end());
  std::vector<std::uint8_t> mask(n, 1);
  for (std::size_t i = 0; i < n; i += 89) mask[i] = 0;
  Peakfinder8 f(p, rows, cols, radius, mask);
  const std::size_t nb = f.rings();
  std::vector<float> ref_off(nb), ref_thr(nb), off(nb), thr(nb);
  const Isa before = active_isa();
  set_isa(Isa::scalar);
  PeakList ref;
  f.find(f32, ref, 1);
  f.ring_stats(f32.data(), PeakInput::f32, ref_off, ref_thr);
  REQUIRE(ref.size() > 30);
  for (Isa isa : available_isas()) {
    set_isa(isa);
    for (const void* data : {static_cast<const void*>(c16.data()), static_cast<const void*>(c32.data())}) {
      const PeakInput type = data == c16.data() ? PeakInput::u16 : PeakInput::u32;
      PeakList got;
      f.find(data, type, 1, got, 1);
      CHECK(got.offsets == ref.offsets);
      CHECK(got.x == ref.x);
      CHECK(got.total_intensity == ref.total_intensity);
      CHECK(got.sigma == ref.sigma);
      f.ring_stats(data, type, off, thr);
      CHECK(off == ref_off);
      CHECK(thr == ref_thr);
    }
  }
  set_isa(before);
}

TEST_CASE("peakfinder8 refuses inconsistent geometry") {
  const auto p = layout(8, 8, 2, 2);
  std::vector<float> r(256, 1.0f);
  CHECK_THROWS_AS(Peakfinder8(p, 16, 15, r, {}), ValueError);
  r[5] = -1.0f;
  CHECK_THROWS_AS(Peakfinder8(p, 16, 16, r, {}), ValueError);
  r[5] = 1.0f;
  std::vector<std::uint8_t> m(10, 1);
  CHECK_THROWS_AS(Peakfinder8(p, 16, 16, r, m), ValueError);
}
