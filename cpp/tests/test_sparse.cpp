#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <vector>

#include "lclstream/error.hpp"
#include "lclstream/sparse.hpp"

using namespace lclstream;

TEST_CASE("sparse lists round-trip frames of every occupancy, tails included") {
  std::mt19937 rng(7);
  for (double p : {0.0, 0.001, 0.05, 0.5, 1.0}) {
    const std::size_t px = 1000 + 13, frames = 5;  // not a multiple of the 32-pixel block
    std::vector<std::uint16_t> in(px * frames, 0);
    std::bernoulli_distribution hit(p);
    std::size_t nonzero = 0;
    for (auto& v : in) {
      if (hit(rng)) {
        v = static_cast<std::uint16_t>(1 + rng() % 65535);
        ++nonzero;
      }
    }
    auto l = sparse::encode(std::span<const std::uint16_t>(in), px, 2);
    REQUIRE(l.offsets.size() == frames + 1);
    REQUIRE(l.index.size() == nonzero);
    for (std::size_t f = 0; f < frames; ++f) {
      for (auto e = l.offsets[f]; e + 1 < l.offsets[f + 1]; ++e) REQUIRE(l.index[e] < l.index[e + 1]);
    }
    std::vector<std::uint16_t> back(px * frames, 7);
    sparse::decode(l.offsets, l.index, l.values, std::span<std::uint16_t>(back), px, 2);
    REQUIRE(back == in);
  }
}

TEST_CASE("sparse decode refuses lists that point outside their frames") {
  std::vector<std::uint64_t> offsets{0, 1, 2};
  std::vector<std::uint32_t> index{3, 10};
  std::vector<std::uint32_t> values{1, 2};
  std::vector<std::uint32_t> out(20, 9);
  REQUIRE_THROWS_AS(sparse::decode(offsets, index, values, std::span<std::uint32_t>(out), 10, 1), ValueError);
  REQUIRE(out[0] == 9);  // untouched
  offsets = {0, 2, 1};
  REQUIRE_THROWS_AS(sparse::decode(offsets, index, values, std::span<std::uint32_t>(out), 10, 1), ValueError);
  offsets = {0, 1, 3};
  REQUIRE_THROWS_AS(sparse::decode(offsets, index, values, std::span<std::uint32_t>(out), 10, 1), ValueError);
  std::vector<std::uint16_t> frames(10, 0);
  REQUIRE_THROWS_AS(sparse::encode(std::span<const std::uint16_t>(frames), 3, 1), ValueError);
}
