#include <catch2/catch.hpp>

#include <cstring>
#include <numeric>
#include <vector>

#include "lclstream/error.hpp"
#include "lclstream/reduce.hpp"

using namespace lclstream;
using namespace lclstream::reduce;

TEST_CASE("zero_below zeroes values under the threshold and counts them") {
  std::vector<float> f{-1.0F, 0.5F, 2.0F, 3.0F, 1.99F};
  CHECK(zero_below(std::span<float>(f), 2.0F, 1) == 3);
  CHECK(f == std::vector<float>{0.0F, 0.0F, 2.0F, 3.0F, 0.0F});
  std::vector<std::uint16_t> u(10000);
  std::iota(u.begin(), u.end(), 0);
  CHECK(zero_below(std::span<std::uint16_t>(u), std::uint16_t{100}, 2) == 100);
  CHECK(u[99] == 0);
  CHECK(u[100] == 100);
}

TEST_CASE("crop copies a window of every frame") {
  const FrameStack s{2, 4, 5};
  std::vector<std::uint16_t> in(40);
  std::iota(in.begin(), in.end(), 0);
  std::vector<std::uint16_t> out(2 * 2 * 3);
  crop(std::as_bytes(std::span(in)), std::as_writable_bytes(std::span(out)), 2, s, 1, 3, 2, 5, 2);
  CHECK(out == std::vector<std::uint16_t>{7, 8, 9, 12, 13, 14, 27, 28, 29, 32, 33, 34});
  CHECK_THROWS_AS(crop(std::as_bytes(std::span(in)), std::as_writable_bytes(std::span(out)), 2, s, 1, 5, 2, 5),
                  ValueError);
}

TEST_CASE("bin sums blocks, counts into uint32 with saturation") {
  const FrameStack s{1, 2, 4};
  std::vector<std::uint16_t> in{1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<std::uint32_t> out(2);
  bin(std::span<const std::uint16_t>(in), std::span<std::uint32_t>(out), s, 2, 2, 1);
  CHECK(out == std::vector<std::uint32_t>{14, 22});
  std::vector<std::uint32_t> big(8, 0xffffffffU), o2(2);
  bin(std::span<const std::uint32_t>(big), std::span<std::uint32_t>(o2), s, 2, 2, 1);
  CHECK(o2[0] == 0xffffffffU);
  std::vector<float> fi{1, 2, 3, 4, 5, 6, 7, 8}, fo(1);
  bin(std::span<const float>(fi), std::span<float>(fo), s, 2, 4, 1);
  CHECK(fo[0] == 36.0F);
  CHECK_THROWS_AS(bin(std::span<const float>(fi), std::span<float>(fo), s, 3, 4, 1), ValueError);
}
