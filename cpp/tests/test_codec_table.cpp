#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "lclstream/codec.hpp"
#include "lclstream/error.hpp"

using namespace lclstream;

// The codec table is what every other layer reads; these check its rows against the codecs'
// own behaviour (names parse back, chunks are framed as the row says) and the HDF5 filter
// options against the values hdf5plugin writes (Bitshuffle(), LZ4(), Zstd()).

TEST_CASE("codec table: every row's name parses back to its codec", "[codec][table]") {
  for (const CodecInfo& info : kCodecTable) {
    REQUIRE(codec_from_name(info.name) == info.codec);
    REQUIRE(codec_name(info.codec) == info.name);
    REQUIRE(&codec_info(info.codec) == &info);
  }
  // LCLStreamer's aliases are configuration vocabulary of the Python layer, not the core's.
  REQUIRE_THROWS_AS(codec_from_name("bitshuffle_with_lz4"), ValueError);
  REQUIRE_THROWS_AS(codec_from_name("gzip"), ValueError);
}

TEST_CASE("codec table: HDF5 filter ids and options are hdf5plugin's", "[codec][table]") {
  REQUIRE(hdf5_filter_id(Codec::bslz4) == 32008);
  REQUIRE(hdf5_filter_id(Codec::bszstd) == 32008);
  REQUIRE(hdf5_filter_id(Codec::lz4) == 32004);
  REQUIRE(hdf5_filter_id(Codec::zstd) == 32015);
  REQUIRE(hdf5_filter_options(Codec::bslz4, 0) == std::vector<unsigned>{0, 2});
  REQUIRE(hdf5_filter_options(Codec::bszstd, 0) == std::vector<unsigned>{0, 3, 3});
  REQUIRE(hdf5_filter_options(Codec::bszstd, 7) == std::vector<unsigned>{0, 3, 7});
  REQUIRE(hdf5_filter_options(Codec::lz4, 5) == std::vector<unsigned>{0});
  REQUIRE(hdf5_filter_options(Codec::zstd, 0) == std::vector<unsigned>{3});
  REQUIRE(hdf5_filter_options(Codec::zstd, 9) == std::vector<unsigned>{9});
}

TEST_CASE("codec table: size_header says how a chunk is framed", "[codec][table]") {
  std::vector<std::uint16_t> data(5000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint16_t>((i * 2654435761u) >> 20);
  const auto in = std::as_bytes(std::span(data));
  for (const CodecInfo& info : kCodecTable) {
    INFO(std::string(info.name));
    CodecOptions opt;
    opt.codec = info.codec;
    std::vector<std::byte> out(compress_bound(opt, in.size(), 2));
    out.resize(compress_chunk(in, 2, out, opt));
    REQUIRE(chunk_uncompressed_size(info.codec, out) == in.size());
    std::uint64_t be = 0;
    for (int b = 0; b < 8; ++b) be = (be << 8) | static_cast<std::uint8_t>(out[static_cast<std::size_t>(b)]);
    if (info.size_header) {
      REQUIRE(be == in.size());
    } else {  // a zstd frame: its magic number, little endian, then its own header
      std::uint32_t magic = 0;
      std::memcpy(&magic, out.data(), 4);
      REQUIRE(magic == 0xFD2FB528u);
    }
    // A bitshuffled chunk depends on the element size; the others do not.
    std::vector<std::byte> out1(compress_bound(opt, in.size(), 1));
    out1.resize(compress_chunk(in, 1, out1, opt));
    REQUIRE((out1 != out) == info.bitshuffled);
  }
}
