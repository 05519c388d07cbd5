// AVX2 bit transpose. (Placeholder until the vector kernel lands: forwards to scalar.)
#include <bit>
#include <cstring>

#include "codec/codec_internal.hpp"

namespace lclstream::avx2 {
namespace {
#include "codec/classify_body.inc"
}  // namespace

void classify_planes(const std::uint8_t* planes, std::size_t nb, std::size_t nplanes, codec_detail::PlaneInfo* info) {
  for (std::size_t p = 0; p < nplanes; ++p) {
    const std::uint8_t* x = planes + p * nb;
    const std::uint64_t pat = 0x0101010101010101ULL * x[0];
    std::uint64_t diff = 0;
    std::size_t flips = 0;
    classify_tail(x, 0, nb, pat, diff, flips);
    info[p] = decide(diff, flips, nb, x[0]);
  }
}

void bit_transpose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size) {
  scalar::bit_transpose(in, out, n, elem_size);
}
void bit_untranspose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size) {
  scalar::bit_untranspose(in, out, n, elem_size);
}
}  // namespace lclstream::avx2
