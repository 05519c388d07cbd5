// libFuzzer target: one codec's chunk decoder on hostile bytes, the way the Python binding
// drives it (cpp/python/bind_codec.cpp): check the chunk against the limits and its own
// headers, allocate only then, decode. Built once per codec with -DLCLS_FUZZ_CODEC=<name>.
// Input: one byte choosing the element size (1, 2, 4, 8), then the chunk.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "lclstream/codec.hpp"
#include "lclstream/decode_limits.hpp"
#include "lclstream/error.hpp"

#ifndef LCLS_FUZZ_CODEC
#error "define LCLS_FUZZ_CODEC (bslz4, bszstd, lz4 or zstd)"
#endif

namespace {
// Small enough that libFuzzer's memory limit is never what stops an input.
constexpr lclstream::DecodeLimits kLimits{std::uint64_t{16} << 20, std::uint64_t{16} << 20};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lclstream;
  if (size < 1) return 0;
  const std::size_t elem = std::size_t{1} << (data[0] & 3);
  const auto chunk = std::as_bytes(std::span(data + 1, size - 1));
  const Codec codec = Codec::LCLS_FUZZ_CODEC;
  try {
    const std::uint64_t declared = chunk_uncompressed_size(codec, chunk);
    if (declared % elem != 0) return 0;  // a dtype x shape never gives this
    check_chunk(codec, chunk, elem, declared, kLimits);
    std::vector<std::byte> out(static_cast<std::size_t>(declared));
    decompress_chunk(chunk, elem, out, codec, (data[0] & 4) ? 2 : 1);
    // What decodes must re-encode and decode to the same bytes.
    CodecOptions o;
    o.codec = codec;
    std::vector<std::byte> again(compress_bound(o, out.size(), elem));
    again.resize(compress_chunk(out, elem, again, o));
    std::vector<std::byte> back(out.size());
    decompress_chunk(again, elem, back, codec);
    if (back != out) __builtin_trap();
  } catch (const Error&) {
    // Typed refusals are the expected outcome for hostile bytes.
  }
  return 0;
}
