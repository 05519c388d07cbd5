#include <catch2/catch.hpp>
#include <lz4.h>

#include <cstring>
#include <random>
#include <vector>

#include "codec/codec_internal.hpp"
#include "lclstream/codec.hpp"

using namespace lclstream;

namespace {

// Both decoders on one block, as the codec uses them: a bslz4 block must decode to exactly
// its block size (`cap`), so that is the verdict compared. Ours must decode every block that
// liblz4 decodes to `cap` bytes, to the same bytes, and refuse every other. (liblz4's verdict
// on blocks that decode to fewer bytes depends on which of its copy loops ran; and ours also
// refuses offset 0, which liblz4 1.9 lets copy the output's own unwritten bytes: no encoder
// writes it.)
void agree(const std::vector<std::uint8_t>& block, std::size_t cap) {
  std::vector<std::uint8_t> ours(cap + codec_detail::kLz4DecodeSlack, 0xAB);
  std::vector<std::uint8_t> ref(cap + 1, 0xCD);
  const std::ptrdiff_t r = codec_detail::lz4_decode_block(block.data(), block.size(), ours.data(), cap);
  const int q = LZ4_decompress_safe(reinterpret_cast<const char*>(block.data()), reinterpret_cast<char*>(ref.data()),
                                    static_cast<int>(block.size()), static_cast<int>(cap));
  INFO("block of " << block.size() << " bytes, capacity " << cap << ": ours " << r << ", liblz4 " << q);
  const bool ours_full = r == static_cast<std::ptrdiff_t>(cap);
  const bool ref_full = q >= 0 && static_cast<std::size_t>(q) == cap;
  if (ours_full) {
    REQUIRE(ref_full);
    REQUIRE(std::memcmp(ours.data(), ref.data(), cap) == 0);
    return;
  }
  if (ref_full) {
    // the only refusal liblz4 does not share: a match at offset 0
    bool zero_offset = false;
    std::size_t i = 0;
    while (i < block.size()) {
      const unsigned t = block[i++];
      std::size_t ll = t >> 4;
      if (ll == 15) {
        while (i < block.size() && block[i] == 255) ll += block[i++];
        if (i < block.size()) ll += block[i++];
      }
      i += ll;
      if (i + 2 > block.size()) break;
      zero_offset |= block[i] == 0 && block[i + 1] == 0;
      i += 2;
      if ((t & 15) == 15) {
        while (i < block.size() && block[i] == 255) ++i;
        ++i;
      }
    }
    REQUIRE(zero_offset);
  }
  if (q >= 0 && r >= 0) {  // both decoded fewer bytes than cap: where both got, the same
    REQUIRE(r == q);
    REQUIRE(std::memcmp(ours.data(), ref.data(), static_cast<std::size_t>(q)) == 0);
  }
}

std::vector<std::uint8_t> lz4(const std::vector<std::uint8_t>& in) {
  std::vector<std::uint8_t> out(static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(in.size()))));
  const int n = LZ4_compress_default(reinterpret_cast<const char*>(in.data()), reinterpret_cast<char*>(out.data()),
                                     static_cast<int>(in.size()), static_cast<int>(out.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// Blocks like bit planes: runs of one byte, sparse bytes, repeats at various distances, noise.
std::vector<std::uint8_t> planes_like(std::mt19937& rng, std::size_t n) {
  std::vector<std::uint8_t> v(n);
  std::uniform_int_distribution<int> kind(0, 4), byte(0, 255), len(1, 700);
  std::size_t i = 0;
  while (i < n) {
    const std::size_t l = std::min<std::size_t>(n - i, static_cast<std::size_t>(len(rng)));
    const int k = kind(rng);
    for (std::size_t j = 0; j < l; ++j) {
      std::uint8_t x = 0;
      if (k == 1) x = 0xFF;
      if (k == 2) x = byte(rng) < 40 ? static_cast<std::uint8_t>(1U << (byte(rng) & 7)) : 0;
      if (k == 3) x = static_cast<std::uint8_t>(byte(rng));
      if (k == 4) x = i + j >= 37 ? v[i + j - 37 + (byte(rng) < 5 ? 1 : 0)] : 7;
      v[i + j] = x;
    }
    i += l;
  }
  return v;
}

}  // namespace

TEST_CASE("lz4_decode_block decodes what liblz4 and the bslz4 encoder write, byte for byte") {
  std::mt19937 rng(7);
  for (std::size_t n : {1, 5, 12, 13, 17, 64, 100, 511, 4096, 8192}) {
    for (int rep = 0; rep < 20; ++rep) {
      const auto v = planes_like(rng, n);
      const auto b = lz4(v);
      agree(b, n);
      std::vector<std::uint8_t> out(n + codec_detail::kLz4DecodeSlack);
      REQUIRE(codec_detail::lz4_decode_block(b.data(), b.size(), out.data(), n) == static_cast<std::ptrdiff_t>(n));
      REQUIRE(std::memcmp(out.data(), v.data(), n) == 0);
    }
  }
  // the bslz4 encoder's own blocks (runs, sparse planes, copies, liblz4 regions)
  for (int rep = 0; rep < 30; ++rep) {
    std::vector<std::uint16_t> frame(16384);
    std::poisson_distribution<int> ph(rep % 3 == 0 ? 0.05 : rep % 3 == 1 ? 0.3 : 2.0);
    for (auto& x : frame) x = static_cast<std::uint16_t>(rep % 2 == 0 ? ph(rng) : 3000 + ph(rng) * 40 + (rng() & 7));
    CodecOptions o;
    std::vector<std::byte> chunk(compress_bound(o, frame.size() * 2, 2));
    chunk.resize(compress_chunk(std::as_bytes(std::span(frame)), 2, chunk, o));
    std::vector<std::uint16_t> back(frame.size());
    decompress_chunk(chunk, 2, std::as_writable_bytes(std::span(back)), Codec::bslz4);
    REQUIRE(back == frame);
    // and every block of it through both decoders (12-byte chunk header, then 4-byte sizes)
    std::size_t pos = 12;
    while (pos + 4 <= chunk.size()) {
      const std::uint32_t cs = codec_detail::get_be32(chunk.data() + pos);
      pos += 4;
      REQUIRE(pos + cs <= chunk.size());
      const auto* p = reinterpret_cast<const std::uint8_t*>(chunk.data() + pos);
      agree(std::vector<std::uint8_t>(p, p + cs), 8192);
      pos += cs;
    }
  }
}

TEST_CASE("lz4_decode_block refuses what liblz4 refuses: mutated, truncated and extended blocks") {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int rep = 0; rep < 20000; ++rep) {
    const std::size_t n = rep % 4 == 0 ? 64 : rep % 4 == 1 ? 700 : 8192;
    auto b = lz4(planes_like(rng, n));
    switch (rep % 5) {
      case 0: b[static_cast<std::size_t>(rng()) % b.size()] = static_cast<std::uint8_t>(byte(rng)); break;
      case 1: b.resize(static_cast<std::size_t>(rng()) % b.size()); break;
      case 2: b.push_back(static_cast<std::uint8_t>(byte(rng))); break;
      case 3:
        for (int k = 0; k < 4; ++k) b[static_cast<std::size_t>(rng()) % b.size()] ^= static_cast<std::uint8_t>(1U << (rng() & 7));
        break;
      default: break;
    }
    agree(b, n);
    agree(b, n - 1);   // a capacity one short
    agree(b, n + 3);   // or a few bytes long
  }
  // pure noise as blocks
  for (int rep = 0; rep < 10000; ++rep) {
    std::vector<std::uint8_t> b(static_cast<std::size_t>(1 + rng() % 300));
    for (auto& x : b) x = static_cast<std::uint8_t>(byte(rng));
    agree(b, static_cast<std::size_t>(1 + rng() % 2000));
  }
  std::vector<std::uint8_t> out(16 + codec_detail::kLz4DecodeSlack);
  REQUIRE(codec_detail::lz4_decode_block(out.data(), 0, out.data(), 16) == -1);  // an empty block
}
