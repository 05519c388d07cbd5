// libFuzzer target: decompress_frames on hostile chunk tables (offsets and sizes from the
// input, as a raw batch or HDF5 message header would give them), after the same per-chunk
// checks the binding runs before allocating. Input: codec (1 byte), element size (1 byte),
// frame count (1 byte, 1-8), then for each frame a 2-byte chunk length, then the chunk bytes.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "lclstream/codec.hpp"
#include "lclstream/decode_limits.hpp"
#include "lclstream/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lclstream;
  if (size < 3) return 0;
  const Codec codec = static_cast<Codec>(data[0] % 4);
  const std::size_t elem = std::size_t{1} << (data[1] & 3);
  const std::size_t frames = 1 + data[2] % 8;
  std::size_t pos = 3;
  if (size - pos < 2 * frames) return 0;
  std::vector<std::size_t> offsets(frames), sizes(frames);
  std::size_t at = 0;
  for (std::size_t i = 0; i < frames; ++i) {
    sizes[i] = std::size_t{data[pos]} << 8 | data[pos + 1];
    offsets[i] = at;
    at += sizes[i];
    pos += 2;
  }
  const auto chunks = std::as_bytes(std::span(data + pos, size - pos));
  const DecodeLimits limits{std::uint64_t{4} << 20, std::uint64_t{16} << 20};
  try {
    for (std::size_t i = 0; i < frames; ++i) {
      if (offsets[i] > chunks.size() || sizes[i] > chunks.size() - offsets[i]) return 0;
    }
    const std::uint64_t fb = chunk_uncompressed_size(codec, chunks.subspan(offsets[0], sizes[0]));
    if (fb % elem != 0) return 0;
    check_message_bytes(fb * frames, limits);
    for (std::size_t i = 0; i < frames; ++i) check_chunk(codec, chunks.subspan(offsets[i], sizes[i]), elem, fb, limits);
    std::vector<std::byte> out(static_cast<std::size_t>(fb * frames));
    decompress_frames(chunks, offsets, sizes, elem, out, codec, 2);
  } catch (const Error&) {
  }
  return 0;
}
