// AVX2 bit transpose. (Placeholder until the vector kernel lands: forwards to scalar.)
#include "codec/codec_internal.hpp"

namespace lclstream::avx2 {
void bit_transpose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size) {
  scalar::bit_transpose(in, out, n, elem_size);
}
void bit_untranspose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size) {
  scalar::bit_untranspose(in, out, n, elem_size);
}
}  // namespace lclstream::avx2
