#include <catch2/catch.hpp>

#include <chrono>
#include <cstring>
#include <numeric>
#include <vector>

#include "codec/codec_internal.hpp"
#include "lclstream/codec.hpp"
#include "lclstream/decode_limits.hpp"
#include "lclstream/error.hpp"

using namespace lclstream;
using codec_detail::put_be32;
using codec_detail::put_be64;

namespace {
constexpr std::uint64_t kTiB = std::uint64_t{1} << 40;

// A 16-byte 32008/32004 chunk: header declaring `declared` bytes in `block`-byte blocks,
// then one block-size word.
std::vector<std::byte> bomb(std::uint64_t declared, std::uint32_t block, std::uint32_t first_block) {
  std::vector<std::byte> c(16);
  put_be64(c.data(), declared);
  put_be32(c.data() + 8, block);
  put_be32(c.data() + 12, first_block);
  return c;
}

std::vector<std::byte> compress_all(const std::vector<std::uint16_t>& v, Codec codec) {
  const auto in = std::as_bytes(std::span(v));
  CodecOptions o;
  o.codec = codec;
  std::vector<std::byte> out(compress_bound(o, in.size(), 2));
  out.resize(compress_chunk(in, 2, out, o));
  return out;
}
}  // namespace

TEST_CASE("a 16-byte chunk claiming 1 TiB is refused in O(1), before any allocation") {
  for (Codec c : {Codec::bslz4, Codec::bszstd, Codec::lz4}) {
    const auto chunk = bomb(kTiB, 8192, 4);
    const auto t0 = std::chrono::steady_clock::now();
    // Over the default 1 GiB limit: CapacityError.
    REQUIRE_THROWS_AS(check_chunk(c, chunk, 2, kTiB), CapacityError);
    // With no limit, the headers alone prove it impossible: CorruptDataError.
    const DecodeLimits none{~std::uint64_t{0}, ~std::uint64_t{0}};
    REQUIRE_THROWS_AS(check_chunk(c, chunk, 2, kTiB, none), CorruptDataError);
    REQUIRE(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(100));
  }
}

TEST_CASE("a chunk claiming more blocks than its bytes can hold is refused") {
  // 1 MiB in 8-byte blocks is 131072 blocks: they need at least 5 bytes each.
  const DecodeLimits none{~std::uint64_t{0}, ~std::uint64_t{0}};
  auto chunk = bomb(1 << 20, 8, 1);
  chunk.resize(4096);
  REQUIRE_THROWS_AS(check_chunk(Codec::bslz4, chunk, 1, 1 << 20, none), CorruptDataError);
  // The decoder itself (caller's output already allocated) refuses it before sizing its
  // block table from the header.
  std::vector<std::byte> out(1 << 20);
  REQUIRE_THROWS_AS(decompress_chunk(chunk, 1, out, Codec::bslz4), CorruptDataError);
}

TEST_CASE("a huge bitshuffle block size cannot make the decoder allocate it") {
  // 256 MiB declared in one 256 MiB block of 100 compressed bytes: LZ4 can give 25500 bytes.
  std::vector<std::byte> chunk(12 + 4 + 100);
  put_be64(chunk.data(), 256u << 20);
  put_be32(chunk.data() + 8, 256u << 20);
  put_be32(chunk.data() + 12, 100);
  const DecodeLimits none{~std::uint64_t{0}, ~std::uint64_t{0}};
  REQUIRE_THROWS_AS(check_chunk(Codec::bslz4, chunk, 4, 256u << 20, none), CorruptDataError);
}

TEST_CASE("the declared size must equal dtype x shape, and limits are configurable") {
  std::vector<std::uint16_t> v(1 << 16);
  std::iota(v.begin(), v.end(), std::uint16_t{0});
  for (Codec c : {Codec::bslz4, Codec::bszstd, Codec::lz4, Codec::zstd}) {
    const auto chunk = compress_all(v, c);
    const std::uint64_t n = v.size() * 2;
    REQUIRE_NOTHROW(check_chunk(c, chunk, 2, n));
    REQUIRE_THROWS_AS(check_chunk(c, chunk, 2, n + 2), CorruptDataError);
    REQUIRE_THROWS_AS(check_chunk(c, chunk, 2, n, DecodeLimits{n - 1, n}), CapacityError);
    REQUIRE(max_decoded_bytes(c, chunk.size()) >= n);
  }
}

TEST_CASE("real chunks of every kind pass: an all-zero frame is within the format's ratio") {
  std::vector<std::uint16_t> zeros(4 << 20, 0);  // 8 MiB of zeros: the best LZ4 can do
  for (Codec c : {Codec::bslz4, Codec::bszstd, Codec::lz4, Codec::zstd}) {
    const auto chunk = compress_all(zeros, c);
    REQUIRE_NOTHROW(check_chunk(c, chunk, 2, zeros.size() * 2));
    std::vector<std::uint16_t> back(zeros.size(), 1);
    decompress_chunk(chunk, 2, std::as_writable_bytes(std::span(back)), c);
    REQUIRE(back == zeros);
  }
}

TEST_CASE("checked_decoded_size refuses overflow and sizes over the limit") {
  const std::uint64_t big[] = {std::uint64_t{1} << 40, std::uint64_t{1} << 40};
  REQUIRE_THROWS_AS(checked_decoded_size(4, big, ~std::uint64_t{0}, "t"), CapacityError);
  const std::uint64_t ok[] = {1024, 1024};
  REQUIRE(checked_decoded_size(2, ok, 2 << 20, "t") == 2 << 20);
  REQUIRE_THROWS_AS(checked_decoded_size(2, ok, (2 << 20) - 1, "t"), CapacityError);
  const std::uint64_t zero[] = {0, std::uint64_t{1} << 62, std::uint64_t{1} << 62};
  REQUIRE(checked_decoded_size(8, zero, 1, "t") == 0);
  REQUIRE_THROWS_AS(check_message_bytes(2, DecodeLimits{2, 1}), CapacityError);
}

TEST_CASE("truncated and corrupt chunks of every codec are refused with CorruptDataError") {
  std::vector<std::uint16_t> v(50000);
  std::iota(v.begin(), v.end(), std::uint16_t{7});
  for (Codec c : {Codec::bslz4, Codec::bszstd, Codec::lz4, Codec::zstd}) {
    const auto chunk = compress_all(v, c);
    std::vector<std::uint16_t> out(v.size());
    auto o = std::as_writable_bytes(std::span(out));
    for (std::size_t cut : {std::size_t{0}, std::size_t{5}, std::size_t{13}, chunk.size() / 2, chunk.size() - 1}) {
      std::vector<std::byte> t(chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(cut));
      REQUIRE_THROWS_AS(decompress_chunk(t, 2, o, c), CorruptDataError);
    }
  }
}
