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
