#include <catch2/catch.hpp>
// Old bitshuffle builds and hdf5plugin's LZ4 filter decode with LZ4_decompress_fast.
#define LZ4_DISABLE_DEPRECATE_WARNINGS
#include <lz4.h>

#include <cstring>
#include <random>
#include <vector>

#include "codec/codec_internal.hpp"
#include "lclstream/batch.hpp"
#include "lclstream/buffer_pool.hpp"
#include "lclstream/codec.hpp"
#include "lclstream/error.hpp"
#include "lclstream/isa.hpp"

using namespace lclstream;

namespace {
struct IsaGuard {
  Isa saved = active_isa();
  ~IsaGuard() { set_isa(saved); }
};

// Jungfrau-like raw frame: per-pixel pedestal 1000-3000 ADU, gaussian noise, rare gain bits.
std::vector<std::uint16_t> jungfrau(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> ped(1000, 3000);
  std::normal_distribution<double> noise(0, 4);
  std::uniform_int_distribution<int> g(0, 999);
  std::vector<std::uint16_t> v(n);
  for (auto& x : v) {
    x = static_cast<std::uint16_t>(static_cast<int>(ped(rng) + noise(rng)) & 0x3FFF);
    if (g(rng) == 0) x = static_cast<std::uint16_t>(x | 0x4000);
  }
  return v;
}

std::vector<std::byte> random_bytes(std::size_t n, unsigned seed, int zero_percent) {
  std::mt19937 rng(seed);
  std::vector<std::byte> v(n);
  for (auto& b : v) b = (static_cast<int>(rng() % 100) < zero_percent) ? std::byte{0} : std::byte(rng());
  return v;
}

template <class T>
std::span<const std::byte> bytes_of(const std::vector<T>& v) {
  return std::as_bytes(std::span(v));
}

std::vector<std::byte> compress(std::span<const std::byte> in, std::size_t es, Codec c, int threads = 1,
                                std::size_t block_size = 0) {
  CodecOptions o;
  o.codec = c;
  o.block_size = block_size;
  std::vector<std::byte> out(compress_bound(o, in.size(), es));
  out.resize(compress_chunk(in, es, out, o, threads));
  return out;
}
}  // namespace

TEST_CASE("every ISA's bit transpose equals scalar, and inverts") {
  IsaGuard guard;
  for (std::size_t es : {1u, 2u, 4u, 8u, 3u}) {
    for (std::size_t n : {8u, 16u, 64u, 120u, 128u, 256u, 512u, 1024u, 4096u, 4104u, 40960u}) {
      auto in = random_bytes(n * es, static_cast<unsigned>(n + es), 30);
      std::vector<std::byte> ref(in.size()), got(in.size()), back(in.size());
      scalar::bit_transpose(in.data(), ref.data(), n, es);
      for (Isa isa : available_isas()) {
        set_isa(isa);
        std::fill(got.begin(), got.end(), std::byte{0xAA});
        bit_transpose(in.data(), got.data(), n, es);
        INFO("isa " << isa_name(isa) << " elem " << es << " n " << n);
        REQUIRE(got == ref);
        bit_untranspose(got.data(), back.data(), n, es);
        REQUIRE(back == in);
      }
    }
  }
}

TEST_CASE("bit plane layout: element j's bit k of byte b at plane b*8+k, byte j/8, bit j%8") {
  std::vector<std::uint16_t> v(16, 0);
  v[3] = 1 << 9;  // byte 1, bit 1 -> plane 9
  std::vector<std::byte> t(32);
  scalar::bit_transpose(reinterpret_cast<const std::byte*>(v.data()), t.data(), 16, 2);
  for (std::size_t i = 0; i < t.size(); ++i) REQUIRE(t[i] == (i == 9 * 2 ? std::byte{1 << 3} : std::byte{0}));
}

TEST_CASE("default block size follows bshuf_default_block_size") {
  REQUIRE(bitshuffle_default_block_size(1) == 8192);
  REQUIRE(bitshuffle_default_block_size(2) == 4096);
  REQUIRE(bitshuffle_default_block_size(4) == 2048);
  REQUIRE(bitshuffle_default_block_size(8) == 1024);
  REQUIRE(bitshuffle_default_block_size(3) == 2728);
  REQUIRE(bitshuffle_default_block_size(128) == 128);
}

TEST_CASE("bslz4 chunk: header, block layout, each block a valid LZ4 block liblz4 decodes") {
  IsaGuard guard;
  const auto frame = jungfrau(3 * 4096 + 1000 + 5, 7);  // 3 full blocks, a shorter one, 5 raw
  for (Isa isa : available_isas()) {
    set_isa(isa);
    const auto in = bytes_of(frame);
    const auto ch = compress(in, 2, Codec::bslz4);
    REQUIRE(codec_detail::get_be64(ch.data()) == in.size());
    REQUIRE(codec_detail::get_be32(ch.data() + 8) == 8192);
    std::size_t pos = 12;
    std::vector<std::byte> planes(8192), ref(8192);
    for (std::size_t elems : {4096u, 4096u, 4096u, 1000u}) {
      const std::size_t c = codec_detail::get_be32(ch.data() + pos);
      pos += 4;
      const int r = LZ4_decompress_safe(reinterpret_cast<const char*>(ch.data() + pos), reinterpret_cast<char*>(planes.data()),
                                        static_cast<int>(c), static_cast<int>(elems * 2));
      REQUIRE(r == static_cast<int>(elems * 2));
      pos += c;
    }
    REQUIRE(ch.size() - pos == 10);
    REQUIRE(std::memcmp(ch.data() + pos, in.data() + in.size() - 10, 10) == 0);
  }
}

TEST_CASE("round trips for every codec, element size and awkward length; threads agree") {
  for (Codec c : {Codec::bslz4, Codec::bszstd, Codec::lz4, Codec::zstd}) {
    for (std::size_t es : {1u, 2u, 4u, 8u}) {
      for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 4095u, 20001u}) {
        auto in = random_bytes(n * es, static_cast<unsigned>(n * 31 + es), 70);
        auto ch = compress(in, es, c);
        auto ch2 = compress(in, es, c, 2);
        REQUIRE(ch == ch2);
        std::vector<std::byte> back(in.size());
        decompress_chunk(ch, es, back, c, 2);
        INFO(codec_name(c) << " es " << es << " n " << n);
        REQUIRE(back == in);
      }
    }
  }
}

TEST_CASE("declared size must match the output before anything is written") {
  const auto frame = jungfrau(1000, 1);
  for (Codec c : {Codec::bslz4, Codec::bszstd, Codec::lz4, Codec::zstd}) {
    auto ch = compress(bytes_of(frame), 2, c);
    std::vector<std::byte> small(1998);
    REQUIRE_THROWS_AS(decompress_chunk(ch, 2, small, c), CorruptDataError);
  }
}

TEST_CASE("fuzz: truncated and mutated chunks raise CorruptDataError or decode, never crash") {
  const auto frame = jungfrau(2 * 4096 + 333, 3);
  std::mt19937 rng(11);
  for (Codec c : {Codec::bslz4, Codec::bszstd, Codec::lz4, Codec::zstd}) {
    const auto ch = compress(bytes_of(frame), 2, c);
    std::vector<std::byte> out(frame.size() * 2);
    std::size_t errors = 0;
    for (std::size_t cut = 0; cut < ch.size(); cut += 1 + cut / 16) {
      std::vector<std::byte> t(ch.begin(), ch.begin() + static_cast<std::ptrdiff_t>(cut));
      REQUIRE_THROWS_AS(decompress_chunk(t, 2, out, c), CorruptDataError);
    }
    for (int iter = 0; iter < 400; ++iter) {
      auto bad = ch;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) {
        // Header bytes and block-size prefixes get extra attention.
        const std::size_t pos = (iter % 3 == 0) ? rng() % std::min<std::size_t>(bad.size(), 24) : rng() % bad.size();
        bad[pos] ^= std::byte(1 + rng() % 255);
      }
      try {
        decompress_chunk(bad, 2, out, c);
      } catch (const CorruptDataError&) {
        ++errors;
      }
    }
    REQUIRE(errors > 0);
  }
}

TEST_CASE("compress_frames packs one chunk per frame into a pooled buffer") {
  const auto a = jungfrau(4 * 5000, 5);
  CodecOptions o;
  BufferPool pool(compress_frames_bound(o, 4, 10000, 2), 2);
  auto r = compress_frames(bytes_of(a), 4, 2, pool, o, 2);
  REQUIRE(r.offsets.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    auto single = compress(bytes_of(a).subspan(i * 10000, 10000), 2, Codec::bslz4);
    REQUIRE(r.sizes[i] == single.size());
    REQUIRE(std::memcmp(r.buffer.data() + r.offsets[i], single.data(), single.size()) == 0);
  }
  std::vector<std::byte> back(a.size() * 2);
  decompress_frames(r.buffer.span().first(r.total_bytes()), r.offsets, r.sizes, 2, back, Codec::bslz4, 2);
  REQUIRE(std::memcmp(back.data(), a.data(), back.size()) == 0);
}

namespace {
// Photon counts: mostly 0 with sparse ones and a few bright spots (sparse planes -> liblz4 splice).
std::vector<std::uint16_t> photons(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::poisson_distribution<int> bg(0.05), spot(40);
  std::vector<std::uint16_t> v(n);
  for (auto& x : v) x = static_cast<std::uint16_t>(bg(rng));
  for (std::size_t k = 0; k < n / 500; ++k) v[rng() % n] = static_cast<std::uint16_t>(spot(rng));
  return v;
}
// Smooth ramp + noise in float32: structured exponent planes, noisy mantissa planes.
std::vector<float> kev(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 1024) * 0.01f + noise(rng);
  return v;
}
}  // namespace

TEST_CASE("every ISA writes byte-identical bslz4 chunks that liblz4 decodes, for several data kinds") {
  IsaGuard guard;
  const auto j = jungfrau(5 * 4096 + 77, 21);
  const auto p = photons(5 * 4096 + 77, 22);
  const auto k = kev(3 * 2048 + 13, 23);
  std::vector<std::pair<std::span<const std::byte>, std::size_t>> inputs{
      {bytes_of(j), 2}, {bytes_of(p), 2}, {bytes_of(k), 4}};
  std::vector<std::uint32_t> zeros(10000, 0), ones(10000, 0xFFFFFFFFu);
  inputs.emplace_back(bytes_of(zeros), 4);
  inputs.emplace_back(bytes_of(ones), 4);
  for (auto [in, es] : inputs) {
    set_isa(Isa::scalar);
    const auto ref = compress(in, es, Codec::bslz4);
    for (Isa isa : available_isas()) {
      set_isa(isa);
      INFO("isa " << isa_name(isa) << " elem " << es);
      REQUIRE(compress(in, es, Codec::bslz4) == ref);
    }
    // Walk the blocks with liblz4 alone and untranspose with the scalar reference.
    set_isa(Isa::scalar);
    const std::size_t bbytes = codec_detail::get_be32(ref.data() + 8);
    std::vector<std::byte> planes(bbytes), back(in.size());
    std::size_t pos = 12, done = 0;
    const std::size_t tail = (in.size() / es) % 8 * es;
    while (done + tail < in.size()) {
      const std::size_t m = std::min(bbytes, (in.size() - tail - done));
      const std::size_t c = codec_detail::get_be32(ref.data() + pos);
      pos += 4;
      REQUIRE(LZ4_decompress_safe(reinterpret_cast<const char*>(ref.data() + pos), reinterpret_cast<char*>(planes.data()),
                                  static_cast<int>(c), static_cast<int>(m)) == static_cast<int>(m));
      REQUIRE(LZ4_decompress_fast(reinterpret_cast<const char*>(ref.data() + pos), reinterpret_cast<char*>(planes.data()),
                                  static_cast<int>(m)) == static_cast<int>(c));
      scalar::bit_untranspose(planes.data(), back.data() + done, m / es, es);
      pos += c;
      done += m;
    }
    std::memcpy(back.data() + done, ref.data() + pos, tail);
    REQUIRE(pos + tail == ref.size());
    REQUIRE(std::memcmp(back.data(), in.data(), in.size()) == 0);
  }
}

TEST_CASE("compress_batch gives each event of a Batch its own chunk") {
  Batch batch(DType::u16, {64, 100}, 3);
  for (unsigned e = 0; e < 3; ++e) {
    const auto f = photons(6400, 40 + e);
    batch.append(bytes_of(f), DType::u16, e, 0);
  }
  CodecOptions o;
  o.codec = Codec::bszstd;
  BufferPool pool(compress_frames_bound(o, 3, 12800, 2), 1);
  const auto r = compress_batch(batch, pool, o, 2);
  REQUIRE(r.sizes.size() == 3);
  std::vector<std::byte> back(12800);
  for (std::size_t e = 0; e < 3; ++e) {
    decompress_chunk(r.buffer.span().subspan(r.offsets[e], r.sizes[e]), 2, back, Codec::bszstd);
    REQUIRE(std::memcmp(back.data(), batch.bytes().data() + e * 12800, 12800) == 0);
  }
}

namespace {
// Photon counts: `percent` of the pixels hold 1-3 photons, a few hold a Bragg peak's hundreds.
template <class T>
std::vector<T> sparse_counts(std::size_t n, unsigned seed, double percent) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 100);
  std::vector<T> v(n, T{0});
  for (auto& x : v) {
    const double r = u(rng);
    if (r < percent * 0.01) x = static_cast<T>(200 + rng() % 1800);
    else if (r < percent) x = static_cast<T>(1 + rng() % 3);
  }
  return v;
}

// Every block of an LZ4-in-bitshuffle chunk through liblz4 alone (safe and fast decoders).
std::vector<std::byte> decode_with_liblz4(const std::vector<std::byte>& chunk, std::size_t total, std::size_t es) {
  const std::size_t bbytes = codec_detail::get_be32(chunk.data() + 8);
  std::vector<std::byte> planes(bbytes), back(total);
  std::size_t pos = 12, done = 0;
  const std::size_t tail = (total / es) % 8 * es;
  while (done + tail < total) {
    const std::size_t m = std::min(bbytes, (total - tail - done));
    const std::size_t c = codec_detail::get_be32(chunk.data() + pos);
    pos += 4;
    REQUIRE(LZ4_decompress_safe(reinterpret_cast<const char*>(chunk.data() + pos), reinterpret_cast<char*>(planes.data()),
                                static_cast<int>(c), static_cast<int>(m)) == static_cast<int>(m));
    REQUIRE(LZ4_decompress_fast(reinterpret_cast<const char*>(chunk.data() + pos), reinterpret_cast<char*>(planes.data()),
                                static_cast<int>(m)) == static_cast<int>(c));
    scalar::bit_untranspose(planes.data(), back.data() + done, m / es, es);
    pos += c;
    done += m;
  }
  std::memcpy(back.data() + done, chunk.data() + pos, tail);
  REQUIRE(pos + tail == chunk.size());
  return back;
}
}  // namespace

TEST_CASE("nonzero-byte masks: every ISA equals a byte loop") {
  IsaGuard guard;
  for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 63u, 64u, 65u, 127u, 128u, 200u, 512u, 1000u}) {
    for (int zp : {0, 50, 90, 100}) {
      const auto in = random_bytes(n, static_cast<unsigned>(n * 7 + static_cast<std::size_t>(zp)), zp);
      const auto* x = reinterpret_cast<const std::uint8_t*>(in.data());
      const std::size_t nw = (n + 63) / 64;
      for (std::uint8_t c : {std::uint8_t{0}, std::uint8_t{0xFF}, std::uint8_t{0x37}}) {
        std::vector<std::uint64_t> ref(nw + 1, 0);
        for (std::size_t i = 0; i < n; ++i) ref[i / 64] |= std::uint64_t(x[i] != c) << (i % 64);
        for (Isa isa : available_isas()) {
          set_isa(isa);
          std::vector<std::uint64_t> got(nw + 1, 0);
          codec_detail::nonzero_mask(x, n, got.data(), c);
          INFO("isa " << isa_name(isa) << " n " << n << " zeros " << zp << "% byte " << int(c));
          REQUIRE(got == ref);
        }
      }
    }
  }
}

TEST_CASE("sparse photon-count data: identical bytes on every ISA, liblz4 decodes, any block size") {
  IsaGuard guard;
  for (double pct : {0.0, 0.05, 0.5, 2.0, 8.0, 20.0, 45.0}) {
    const auto c8 = sparse_counts<std::uint8_t>(3 * 8192 + 35, 31, pct);
    const auto c16 = sparse_counts<std::uint16_t>(5 * 4096 + 77, 32, pct);
    const auto c32 = sparse_counts<std::uint32_t>(3 * 2048 + 13, 33, pct);
    const std::vector<std::pair<std::span<const std::byte>, std::size_t>> inputs{
        {bytes_of(c8), 1}, {bytes_of(c16), 2}, {bytes_of(c32), 4}};
    for (auto [in, es] : inputs) {
      for (std::size_t bs : {0u, 16u, 64u, 136u, 1000u, 4096u, 8000u}) {
        set_isa(Isa::scalar);
        const auto ref = compress(in, es, Codec::bslz4, 1, bs);
        for (Isa isa : available_isas()) {
          set_isa(isa);
          INFO("isa " << isa_name(isa) << " elem " << es << " block " << bs << " percent " << pct);
          REQUIRE(compress(in, es, Codec::bslz4, 1, bs) == ref);
        }
        INFO("elem " << es << " block " << bs << " percent " << pct);
        set_isa(Isa::scalar);
        const auto back = decode_with_liblz4(ref, in.size(), es);
        REQUIRE(std::memcmp(back.data(), in.data(), in.size()) == 0);
        if (pct <= 2.0 && bs == 0) REQUIRE(ref.size() * 4 < in.size());  // sparse data must shrink
      }
    }
  }
}
