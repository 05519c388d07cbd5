// LZ4 block encoder for bit-transposed blocks.
#include <lz4.h>

#include "codec/codec_internal.hpp"

namespace lclstream::codec_detail {

std::size_t encode_planes_lz4(const std::byte* planes, std::size_t plane_bytes, std::size_t nplanes, std::byte* out,
                              std::size_t cap, void* lz4_state, std::byte* /*tmp*/, std::size_t /*tmp_cap*/) {
  const int r = LZ4_compress_fast_extState(lz4_state, reinterpret_cast<const char*>(planes), reinterpret_cast<char*>(out),
                                           static_cast<int>(plane_bytes * nplanes), static_cast<int>(cap), 1);
  return r > 0 ? static_cast<std::size_t>(r) : 0;
}

}  // namespace lclstream::codec_detail
