// The bslz4 block encoder's own LZ4 match finder (planes_lz4.cpp, Emitter::lz): on the raw
// frames that send planes to it, every block is a valid LZ4 block that liblz4 decodes to the
// block exactly, and the bytes never depend on what the encoder's match table held before.
#include <catch2/catch.hpp>
#include <lz4.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "codec/codec_internal.hpp"
#include "lclstream/codec.hpp"
#include "lclstream/isa.hpp"

using namespace lclstream;

namespace {

constexpr std::size_t kElems = 4096;  // bitshuffle's default block for 2-byte elements

// Raw Jungfrau-like words: a pedestal, Gaussian noise, a fraction of pixels with a photon of
// ~40 ADU/keV, a few gain-switched pixels (bit 14): the codec family's hard rows.
std::vector<std::uint16_t> raw_frame(std::size_t n, double pedestal, double spread, double sigma, double photons,
                                     double kev, double gain, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0, sigma), photon(40 * kev, 20);
  std::uniform_real_distribution<double> u(0, 1), ped(pedestal - spread, pedestal + spread);
  std::vector<std::uint16_t> w(n);
  for (auto& x : w) {
    double adu = (spread > 0 ? ped(rng) : pedestal) + noise(rng);
    if (u(rng) < photons) adu += photon(rng);
    adu = adu < 0 ? 0 : adu > 0x3FFF ? 0x3FFF : adu;
    x = static_cast<std::uint16_t>(adu);
    if (u(rng) < gain) x = static_cast<std::uint16_t>((x & 0x3FFF) | (1u << 14));
  }
  return w;
}

struct Encoder {
  std::unique_ptr<LZ4_stream_t> state = std::make_unique<LZ4_stream_t>();
  std::vector<std::byte> tmp = std::vector<std::byte>(static_cast<std::size_t>(LZ4_compressBound(2 * kElems)));
  codec_detail::MatchTable table{};

  std::vector<std::uint8_t> block(const std::vector<std::byte>& planes) {
    std::vector<std::uint8_t> out(static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(planes.size()))));
    const std::size_t r = codec_detail::encode_planes_lz4(planes.data(), planes.size() / 16, 16,
                                                          reinterpret_cast<std::byte*>(out.data()), out.size(),
                                                          state.get(), tmp.data(), tmp.size(), table);
    REQUIRE(r > 0);
    out.resize(r);
    return out;
  }
};

std::vector<std::byte> transposed(const std::vector<std::uint16_t>& w, std::size_t block) {
  std::vector<std::byte> t(kElems * 2);
  bit_transpose(reinterpret_cast<const std::byte*>(w.data() + block * kElems), t.data(), kElems, 2);
  return t;
}

void decodes_to(const std::vector<std::uint8_t>& lz, const std::vector<std::byte>& planes) {
  std::vector<char> back(planes.size());
  const int q = LZ4_decompress_safe(reinterpret_cast<const char*>(lz.data()), back.data(), static_cast<int>(lz.size()),
                                    static_cast<int>(back.size()));
  REQUIRE(q == static_cast<int>(planes.size()));
  REQUIRE(std::memcmp(back.data(), planes.data(), planes.size()) == 0);
}

}  // namespace

TEST_CASE("match finder: the hard raw frames decode exactly and take the LZ4 path", "[codec]") {
  struct Case {
    double spread, sigma, photons, kev, gain;
  };
  const Case cases[] = {{0, 2, 0.1, 9.5, 0}, {0, 2, 0.1, 12, 0.001}, {0, 5, 0.02, 6, 0},
                        {0, 20, 0.1, 9.5, 0}, {1000, 5, 0.1, 12, 0.001}, {0, 3, 0.3, 8, 0.01}};
  unsigned seed = 1;
  for (const Case& c : cases) {
    const auto w = raw_frame(kElems * 16, 3000, c.spread, c.sigma, c.photons, c.kev, c.gain, seed++);
    Encoder enc;
    std::uint64_t counts[6] = {};
    for (std::size_t b = 0; b < 16; ++b) {
      const auto planes = transposed(w, b);
      codec_detail::plane_paths(planes.data(), planes.size() / 16, 16, counts);
      decodes_to(enc.block(planes), planes);
    }
    INFO("case sigma " << c.sigma << " photons " << c.photons);
    if (c.photons >= 0.1) CHECK(counts[5] > 0);  // planes went to the match finder
  }
}

TEST_CASE("match finder: a block's bytes do not depend on earlier blocks", "[codec]") {
  const auto w = raw_frame(kElems * 8, 3000, 0, 2, 0.1, 9.5, 0.001, 7);
  const auto other = raw_frame(kElems * 8, 2500, 500, 5, 0.05, 6, 0, 8);
  std::vector<std::vector<std::uint8_t>> fresh;
  for (std::size_t b = 0; b < 8; ++b) fresh.push_back(Encoder{}.block(transposed(w, b)));
  Encoder enc;
  for (std::size_t b = 0; b < 8; ++b) enc.block(transposed(other, b));
  for (std::size_t b = 0; b < 8; ++b) CHECK(enc.block(transposed(w, b)) == fresh[b]);
}

TEST_CASE("match finder: whatever the table held before, a block's bytes are the same", "[codec]") {
  const auto w = raw_frame(kElems, 3000, 0, 2, 0.1, 9.5, 0, 11);
  const auto planes = transposed(w, 0);
  const auto fresh = Encoder{}.block(planes);
  // Positions all over, most of them past this block: taken as candidates they would give
  // other bytes, offsets that point forward, or reads past the block (ASan).
  Encoder enc;
  std::mt19937 rng(3);
  for (auto& e : enc.table.slot) e = static_cast<std::uint16_t>(rng());
  const auto again = enc.block(planes);
  CHECK(again == fresh);
  decodes_to(again, planes);
}

TEST_CASE("bslz4 blocks over 64 KiB (16-bit positions) take the plain path and round trip", "[codec]") {
  const auto w = raw_frame(3 * 40000 + 24, 3000, 0, 2, 0.1, 9.5, 0, 21);
  CodecOptions opt{Codec::bslz4};
  opt.block_size = 40000;  // 80 000 bytes a block
  Compressor c;
  std::vector<std::byte> out(compress_bound(opt, w.size() * 2, 2));
  const std::size_t n = c.compress(std::as_bytes(std::span(w)), 2, out, opt);
  out.resize(n);
  std::vector<std::uint16_t> back(w.size());
  c.decompress(out, 2, std::as_writable_bytes(std::span(back)), Codec::bslz4);
  CHECK(back == w);
}

TEST_CASE("match finder: a shorter block after longer ones reads only its own bytes", "[codec]") {
  // The longer blocks leave table entries at positions past the short block's end (ASan, which
  // CI runs this under, reports the read if the table is not cleared for it).
  const auto w = raw_frame(kElems * 2, 3000, 0, 2, 0.1, 9.5, 0, 31);
  Encoder enc;
  enc.block(transposed(w, 0));
  for (std::size_t elems : {1024u, 256u, 136u}) {
    std::vector<std::byte> planes(elems * 2);
    bit_transpose(reinterpret_cast<const std::byte*>(w.data() + kElems), planes.data(), elems, 2);
    const auto lz = enc.block(planes);
    CHECK(lz == Encoder{}.block(planes));
    decodes_to(lz, planes);
  }
}

TEST_CASE("every ISA encodes the hard raw frames to the same bytes", "[codec]") {
  struct IsaGuard {
    Isa saved = active_isa();
    ~IsaGuard() { set_isa(saved); }
  } guard;
  const auto w = raw_frame(kElems * 8 + 1000, 3000, 0, 5, 0.1, 9.5, 0.001, 41);
  CodecOptions opt{Codec::bslz4};
  std::vector<std::vector<std::byte>> chunks;
  for (Isa isa : available_isas()) {
    set_isa(isa);
    Compressor c;
    std::vector<std::byte> out(compress_bound(opt, w.size() * 2, 2));
    out.resize(c.compress(std::as_bytes(std::span(w)), 2, out, opt));
    chunks.push_back(std::move(out));
  }
  for (const auto& ch : chunks) CHECK(ch == chunks.front());
}

TEST_CASE("differ_mask and count_differing: every ISA as scalar", "[codec]") {
  struct IsaGuard {
    Isa saved = active_isa();
    ~IsaGuard() { set_isa(saved); }
  } guard;
  std::mt19937 rng(5);
  for (std::size_t n : {1u, 63u, 64u, 65u, 200u, 512u, 1000u}) {
    std::vector<std::uint8_t> x(n), y(n);
    for (std::size_t i = 0; i < n; ++i) {
      x[i] = static_cast<std::uint8_t>(rng() % 4 == 0 ? rng() : 0xFF);
      y[i] = rng() % 3 == 0 ? static_cast<std::uint8_t>(rng()) : x[i];
    }
    std::vector<std::uint64_t> ref((n + 63) / 64), got(ref.size());
    scalar::differ_mask(x.data(), y.data(), n, ref.data());
    for (std::size_t i = 0; i < n; ++i) REQUIRE(((ref[i / 64] >> (i % 64)) & 1) == (x[i] != y[i] ? 1u : 0u));
    for (Isa isa : available_isas()) {
      set_isa(isa);
      INFO("isa " << isa_name(isa) << " n " << n);
      codec_detail::differ_mask(x.data(), y.data(), n, got.data());
      CHECK(got == ref);
      for (std::size_t limit : {std::size_t{0}, std::size_t{10}, n / 3, n}) {
        CHECK(codec_detail::count_differing(x.data(), y.data(), 0, n, limit) ==
              scalar::count_differing(x.data(), y.data(), 0, n, limit));
        CHECK(codec_detail::count_differing(x.data(), nullptr, 0xFF, n, limit) ==
              scalar::count_differing(x.data(), nullptr, 0xFF, n, limit));
      }
      std::size_t all = 0;
      for (std::size_t i = 0; i < n; ++i) all += x[i] != y[i];
      CHECK(codec_detail::count_differing(x.data(), y.data(), 0, n, n) == all);
    }
  }
}
