// AVX-512 (VBMI + GFNI) bit transpose. Two passes over a block that stays in L1:
//  A. byte transpose: element bytes -> E streams of n bytes (vpermb), skipped for E = 1;
//  B. per stream, 8x8 bit transposes with one GF2P8AFFINEQB per 64 bytes (the data is the
//     matrix operand), then a byte permute that gathers each plane's bytes together.
// The inverse runs the same steps backwards. Tails that do not fill a vector use the same
// arithmetic in scalar form, so results are bit-identical to lclstream::scalar.
// GCC 12 reports its own _mm512_undefined_* placeholders inside the intrinsics headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

#include "codec/codec_internal.hpp"

namespace lclstream::avx512 {
namespace {

inline std::uint64_t transpose8(std::uint64_t x) noexcept {
  std::uint64_t t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAULL;
  x ^= t ^ (t << 7);
  t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCULL;
  x ^= t ^ (t << 14);
  t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ULL;
  x ^= t ^ (t << 28);
  return x;
}

// Byte-index tables, built once.
struct Tables {
  alignas(64) std::uint8_t rev[64];        // reverse the bytes of each qword
  alignas(64) std::uint8_t fwd[2][64];     // (y0,y1) -> planes 0-3 / 4-7, 16 bytes each
  alignas(64) std::uint8_t inv[2][64];     // planes (Z0,Z1) -> reversed group form, chunk 0 / 1
  alignas(64) std::uint8_t fwd1[64];       // one chunk: y -> plane-major (8 bytes per plane)
  alignas(64) std::uint8_t inv1[64];       // one chunk: plane-major -> reversed group form
  alignas(64) std::uint8_t split[4][64];   // E = 2, 4, 8: bytes of elements -> stream-major (index by log2 E - 1)
  alignas(64) std::uint8_t join[4][64];    // inverse of split
  alignas(64) std::uint8_t rev2[2][64];    // E = 2: byte b of 64 elements (128 bytes), each qword reversed
  alignas(64) std::uint8_t zip2[2][64];    // E = 2: interleave bytes 0-31 / 32-63 of two streams
  Tables() {
    for (int i = 0; i < 64; ++i) rev[i] = static_cast<std::uint8_t>((i & ~7) | (7 - (i & 7)));
    for (int h = 0; h < 2; ++h) {
      for (int jj = 0; jj < 4; ++jj) {
        const int j = jj + 4 * h;
        for (int m = 0; m < 16; ++m) fwd[h][jj * 16 + m] = static_cast<std::uint8_t>((m / 8) * 64 + (m % 8) * 8 + j);
      }
    }
    for (int c = 0; c < 2; ++c) {
      for (int g = 0; g < 8; ++g) {
        for (int k = 0; k < 8; ++k) inv[c][g * 8 + k] = static_cast<std::uint8_t>((7 - k) * 16 + c * 8 + g);
      }
    }
    for (int j = 0; j < 8; ++j) {
      for (int g = 0; g < 8; ++g) fwd1[j * 8 + g] = static_cast<std::uint8_t>(g * 8 + j);
    }
    for (int g = 0; g < 8; ++g) {
      for (int k = 0; k < 8; ++k) inv1[g * 8 + k] = static_cast<std::uint8_t>((7 - k) * 8 + g);
    }
    for (int b = 0; b < 2; ++b) {
      for (int i = 0; i < 64; ++i) rev2[b][i] = static_cast<std::uint8_t>(2 * rev[i] + b);
      for (int i = 0; i < 64; ++i) zip2[b][i] = static_cast<std::uint8_t>((i % 2) * 64 + 32 * b + i / 2);
    }
    for (int l = 0; l < 3; ++l) {
      const int e = 2 << l, per = 64 / e;
      for (int b = 0; b < e; ++b) {
        for (int k = 0; k < per; ++k) {
          split[l][b * per + k] = static_cast<std::uint8_t>(k * e + b);
          join[l][k * e + b] = static_cast<std::uint8_t>(b * per + k);
        }
      }
    }
  }
};
const Tables& tables() {
  static const Tables t;
  return t;
}

inline __m512i load(const void* p) { return _mm512_loadu_si512(p); }
inline __m512i gf_transpose(__m512i x) {
  // Result byte j, bit i = bit j of matrix byte 7-i: with the qword's bytes reversed, the
  // result's byte j holds bit j of the 8 elements (plane j), element i at bit i.
  return _mm512_gf2p8affine_epi64_epi8(_mm512_set1_epi64(static_cast<long long>(0x8040201008040201ULL)), x, 0);
}

// Phase A: E-byte elements -> E streams of n bytes each.
template <std::size_t E>
void split_bytes(const std::uint8_t* src, std::uint8_t* dst, std::size_t n) {
  constexpr std::size_t per = 64 / E;
  constexpr int l = E == 2 ? 0 : E == 4 ? 1 : 2;
  const __m512i idx = load(tables().split[l]);
  std::size_t k = 0;
  for (; k + per <= n; k += per) {
    const __m512i v = _mm512_permutexvar_epi8(idx, load(src + k * E));
    alignas(64) std::uint8_t tmp[64];
    _mm512_store_si512(tmp, v);
    for (std::size_t b = 0; b < E; ++b) std::memcpy(dst + b * n + k, tmp + b * per, per);
  }
  for (; k < n; ++k) {
    for (std::size_t b = 0; b < E; ++b) dst[b * n + k] = src[k * E + b];
  }
}

template <std::size_t E>
void join_bytes(const std::uint8_t* src, std::uint8_t* dst, std::size_t n) {
  constexpr std::size_t per = 64 / E;
  constexpr int l = E == 2 ? 0 : E == 4 ? 1 : 2;
  const __m512i idx = load(tables().join[l]);
  std::size_t k = 0;
  for (; k + per <= n; k += per) {
    alignas(64) std::uint8_t tmp[64];
    for (std::size_t b = 0; b < E; ++b) std::memcpy(tmp + b * per, src + b * n + k, per);
    _mm512_storeu_si512(dst + k * E, _mm512_permutexvar_epi8(idx, _mm512_load_si512(tmp)));
  }
  for (; k < n; ++k) {
    for (std::size_t b = 0; b < E; ++b) dst[k * E + b] = src[b * n + k];
  }
}

// E = 2, both phases fused: 128 elements (256 bytes) -> 16 bytes of each of the 16 planes,
// without the stream buffer: the byte split and the qword reversal are one two-source vpermb.
// Returns the elements done (a multiple of 128); the rest goes the two-pass way.
std::size_t transpose2_fused(const std::uint8_t* src, std::uint8_t* dst, std::size_t n) {
  const Tables& t = tables();
  const std::size_t nb = n / 8;
  const __m512i r0 = load(t.rev2[0]), r1 = load(t.rev2[1]), f0 = load(t.fwd[0]), f1 = load(t.fwd[1]);
  std::size_t k = 0;
  for (; k + 128 <= n; k += 128) {
    const __m512i a0 = load(src + 2 * k), a1 = load(src + 2 * k + 64);
    const __m512i a2 = load(src + 2 * k + 128), a3 = load(src + 2 * k + 192);
    const std::size_t g = k / 8;
    for (std::size_t b = 0; b < 2; ++b) {
      const __m512i idx = b == 0 ? r0 : r1;
      const __m512i y0 = gf_transpose(_mm512_permutex2var_epi8(a0, idx, a1));
      const __m512i y1 = gf_transpose(_mm512_permutex2var_epi8(a2, idx, a3));
      const __m512i z0 = _mm512_permutex2var_epi8(y0, f0, y1);
      const __m512i z1 = _mm512_permutex2var_epi8(y0, f1, y1);
      std::uint8_t* planes = dst + b * n;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + 0 * nb + g), _mm512_castsi512_si128(z0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + 1 * nb + g), _mm512_extracti32x4_epi32(z0, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + 2 * nb + g), _mm512_extracti32x4_epi32(z0, 2));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + 3 * nb + g), _mm512_extracti32x4_epi32(z0, 3));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + 4 * nb + g), _mm512_castsi512_si128(z1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + 5 * nb + g), _mm512_extracti32x4_epi32(z1, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + 6 * nb + g), _mm512_extracti32x4_epi32(z1, 2));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + 7 * nb + g), _mm512_extracti32x4_epi32(z1, 3));
    }
  }
  return k;
}

// The inverse of transpose2_fused: 16 bytes of each of the 16 planes -> 128 elements; with
// Stream, streaming stores (dst 64-byte aligned; the caller fences).
template <bool Stream>
void untranspose2_fused(const std::uint8_t* src, std::uint8_t* dst, std::size_t n) {
  const Tables& t = tables();
  const std::size_t nb = n / 8;
  const __m512i i0 = load(t.inv[0]), i1 = load(t.inv[1]), q0 = load(t.zip2[0]), q1 = load(t.zip2[1]);
  for (std::size_t k = 0; k + 128 <= n; k += 128) {
    const std::size_t g = k / 8;
    __m512i lo[2], hi[2];  // stream b, elements k..k+63 / k+64..k+127
    for (std::size_t b = 0; b < 2; ++b) {
      const std::uint8_t* planes = src + b * n;
      auto l128 = [&](std::size_t j) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(planes + j * nb + g)); };
      __m512i z0 = _mm512_castsi128_si512(l128(0));
      z0 = _mm512_inserti32x4(z0, l128(1), 1);
      z0 = _mm512_inserti32x4(z0, l128(2), 2);
      z0 = _mm512_inserti32x4(z0, l128(3), 3);
      __m512i z1 = _mm512_castsi128_si512(l128(4));
      z1 = _mm512_inserti32x4(z1, l128(5), 1);
      z1 = _mm512_inserti32x4(z1, l128(6), 2);
      z1 = _mm512_inserti32x4(z1, l128(7), 3);
      lo[b] = gf_transpose(_mm512_permutex2var_epi8(z0, i0, z1));
      hi[b] = gf_transpose(_mm512_permutex2var_epi8(z0, i1, z1));
    }
    std::uint8_t* o = dst + 2 * k;
    const __m512i w[4] = {_mm512_permutex2var_epi8(lo[0], q0, lo[1]), _mm512_permutex2var_epi8(lo[0], q1, lo[1]),
                          _mm512_permutex2var_epi8(hi[0], q0, hi[1]), _mm512_permutex2var_epi8(hi[0], q1, hi[1])};
    for (int j = 0; j < 4; ++j) {
      if constexpr (Stream) {
        _mm512_stream_si512(reinterpret_cast<__m512i*>(o + 64 * j), w[j]);
      } else {
        _mm512_storeu_si512(o + 64 * j, w[j]);
      }
    }
  }
}

// Phase B: one stream of n bytes -> 8 planes of n/8 bytes at `planes` (plane stride nb).
void stream_to_planes(const std::uint8_t* s, std::uint8_t* planes, std::size_t n) {
  const Tables& t = tables();
  const std::size_t nb = n / 8;
  const __m512i rev = load(t.rev), f0 = load(t.fwd[0]), f1 = load(t.fwd[1]), f1c = load(t.fwd1);
  std::size_t g = 0;  // group (8 bytes) index = byte offset within each plane
  for (; g + 16 <= nb; g += 16) {
    const __m512i y0 = gf_transpose(_mm512_permutexvar_epi8(rev, load(s + g * 8)));
    const __m512i y1 = gf_transpose(_mm512_permutexvar_epi8(rev, load(s + g * 8 + 64)));
    const __m512i z0 = _mm512_permutex2var_epi8(y0, f0, y1);
    const __m512i z1 = _mm512_permutex2var_epi8(y0, f1, y1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + 0 * nb + g), _mm512_castsi512_si128(z0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + 1 * nb + g), _mm512_extracti32x4_epi32(z0, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + 2 * nb + g), _mm512_extracti32x4_epi32(z0, 2));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + 3 * nb + g), _mm512_extracti32x4_epi32(z0, 3));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + 4 * nb + g), _mm512_castsi512_si128(z1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + 5 * nb + g), _mm512_extracti32x4_epi32(z1, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + 6 * nb + g), _mm512_extracti32x4_epi32(z1, 2));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(planes + 7 * nb + g), _mm512_extracti32x4_epi32(z1, 3));
  }
  for (; g + 8 <= nb; g += 8) {
    const __m512i y = gf_transpose(_mm512_permutexvar_epi8(rev, load(s + g * 8)));
    alignas(64) std::uint8_t tmp[64];
    _mm512_store_si512(tmp, _mm512_permutexvar_epi8(f1c, y));
    for (std::size_t j = 0; j < 8; ++j) std::memcpy(planes + j * nb + g, tmp + j * 8, 8);
  }
  for (; g < nb; ++g) {
    std::uint64_t x;
    std::memcpy(&x, s + g * 8, 8);
    x = transpose8(x);
    for (std::size_t j = 0; j < 8; ++j) planes[j * nb + g] = static_cast<std::uint8_t>(x >> (8 * j));
  }
}

void planes_to_stream(const std::uint8_t* planes, std::uint8_t* s, std::size_t n) {
  const Tables& t = tables();
  const std::size_t nb = n / 8;
  const __m512i i0 = load(t.inv[0]), i1 = load(t.inv[1]), i1c = load(t.inv1);
  std::size_t g = 0;
  auto l128 = [&](std::size_t j) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(planes + j * nb + g)); };
  for (; g + 16 <= nb; g += 16) {
    __m512i z0 = _mm512_castsi128_si512(l128(0));
    z0 = _mm512_inserti32x4(z0, l128(1), 1);
    z0 = _mm512_inserti32x4(z0, l128(2), 2);
    z0 = _mm512_inserti32x4(z0, l128(3), 3);
    __m512i z1 = _mm512_castsi128_si512(l128(4));
    z1 = _mm512_inserti32x4(z1, l128(5), 1);
    z1 = _mm512_inserti32x4(z1, l128(6), 2);
    z1 = _mm512_inserti32x4(z1, l128(7), 3);
    _mm512_storeu_si512(s + g * 8, gf_transpose(_mm512_permutex2var_epi8(z0, i0, z1)));
    _mm512_storeu_si512(s + g * 8 + 64, gf_transpose(_mm512_permutex2var_epi8(z0, i1, z1)));
  }
  for (; g + 8 <= nb; g += 8) {
    alignas(64) std::uint8_t tmp[64];
    for (std::size_t j = 0; j < 8; ++j) std::memcpy(tmp + j * 8, planes + j * nb + g, 8);
    _mm512_storeu_si512(s + g * 8, gf_transpose(_mm512_permutexvar_epi8(i1c, _mm512_load_si512(tmp))));
  }
  for (; g < nb; ++g) {
    std::uint64_t x = 0;
    for (std::size_t j = 0; j < 8; ++j) x |= std::uint64_t(planes[j * nb + g]) << (8 * j);
    x = transpose8(x);
    std::memcpy(s + g * 8, &x, 8);
  }
}

inline int popcnt64(std::uint64_t v) noexcept { return std::popcount(v); }
#include "codec/classify_body.inc"

// Scratch for the byte-transposed block (bitshuffle blocks are 8 KiB by default).
thread_local std::array<std::uint8_t, 1 << 16> t_scratch;

}  // namespace

void classify_planes(const std::uint8_t* planes, std::size_t nb, std::size_t nplanes, codec_detail::PlaneInfo* info) {
  for (std::size_t p = 0; p < nplanes; ++p) {
    const std::uint8_t* x = planes + p * nb;
    const std::uint64_t pat = 0x0101010101010101ULL * x[0];
    const __m512i vpat = _mm512_set1_epi64(static_cast<long long>(pat));
    __m512i vdiff = _mm512_setzero_si512();
    const __m512i all = _mm512_set1_epi8(-1);
    std::size_t i = 0, zeros = 0, ones = 0, flips = 0;
    for (; i + 64 <= nb; i += 64) {
      const __m512i v = load(x + i);
      vdiff = _mm512_or_si512(vdiff, _mm512_xor_si512(v, vpat));
      zeros += static_cast<std::size_t>(std::popcount(_mm512_testn_epi8_mask(v, v)));
      ones += static_cast<std::size_t>(std::popcount(_mm512_cmpeq_epi8_mask(v, all)));
    }
    std::uint64_t diff = _mm512_test_epi64_mask(vdiff, vdiff) ? 1 : 0;
    classify_tail(x, i, nb, pat, diff, flips, zeros, ones);
    // Constant and sparse planes do not need the flip count (decide reports 0 for them).
    if (diff != 0 && zeros * 10 < nb * 8 && ones * 10 < nb * 8) {
      __m512i vflips = _mm512_setzero_si512();
      for (std::size_t k = 0; k + 64 <= nb; k += 64) {
        const __m512i v = load(x + k);
        vflips = _mm512_add_epi64(vflips, _mm512_popcnt_epi64(_mm512_xor_si512(v, _mm512_srli_epi64(v, 1))));
      }
      flips += static_cast<std::size_t>(_mm512_reduce_add_epi64(vflips));
    }
    info[p] = decide(diff, flips, zeros, ones, nb, x[0]);
  }
}

void nonzero_mask(const std::uint8_t* x, std::size_t n, std::uint64_t* out, std::uint8_t c) {
  const __m512i vc = _mm512_set1_epi8(static_cast<char>(c));
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) out[i / 64] = _mm512_cmpneq_epi8_mask(load(x + i), vc);
  nonzero_mask_tail(x, i, n, out, c);
}

void differ_mask(const std::uint8_t* x, const std::uint8_t* y, std::size_t n, std::uint64_t* out) {
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) out[i / 64] = _mm512_cmpneq_epi8_mask(load(x + i), load(y + i));
  differ_mask_tail(x, y, i, n, out);
}

std::size_t count_differing(const std::uint8_t* x, const std::uint8_t* y, std::uint8_t c, std::size_t n,
                            std::size_t limit) {
  const __m512i vc = _mm512_set1_epi8(static_cast<char>(c));
  std::size_t d = 0, i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i b = y != nullptr ? load(y + i) : vc;
    d += static_cast<std::size_t>(std::popcount(_mm512_cmpneq_epi8_mask(load(x + i), b)));
    if (d > limit) return d;
  }
  return count_differing_tail(x, y, c, i, n, limit, d);
}

void bit_transpose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size) {
  const auto* src = reinterpret_cast<const std::uint8_t*>(in);
  auto* dst = reinterpret_cast<std::uint8_t*>(out);
  if (elem_size == 1) return stream_to_planes(src, dst, n);
  if (elem_size == 2 && n % 128 == 0) {
    transpose2_fused(src, dst, n);
    return;
  }
  if ((elem_size != 2 && elem_size != 4 && elem_size != 8) || n * elem_size > t_scratch.size()) {
    return scalar::bit_transpose(in, out, n, elem_size);
  }
  std::uint8_t* tmp = t_scratch.data();
  if (elem_size == 2) split_bytes<2>(src, tmp, n);
  if (elem_size == 4) split_bytes<4>(src, tmp, n);
  if (elem_size == 8) split_bytes<8>(src, tmp, n);
  for (std::size_t b = 0; b < elem_size; ++b) stream_to_planes(tmp + b * n, dst + b * n, n);
}

void bit_untranspose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size) {
  const auto* src = reinterpret_cast<const std::uint8_t*>(in);
  auto* dst = reinterpret_cast<std::uint8_t*>(out);
  if (elem_size == 1) return planes_to_stream(src, dst, n);
  if (elem_size == 2 && n % 128 == 0) {
    untranspose2_fused<false>(src, dst, n);
    return;
  }
  if ((elem_size != 2 && elem_size != 4 && elem_size != 8) || n * elem_size > t_scratch.size()) {
    return scalar::bit_untranspose(in, out, n, elem_size);
  }
  std::uint8_t* tmp = t_scratch.data();
  for (std::size_t b = 0; b < elem_size; ++b) planes_to_stream(src + b * n, tmp + b * n, n);
  if (elem_size == 2) join_bytes<2>(tmp, dst, n);
  if (elem_size == 4) join_bytes<4>(tmp, dst, n);
  if (elem_size == 8) join_bytes<8>(tmp, dst, n);
}

bool bit_untranspose_stream(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size) {
  if (elem_size != 2 || n % 128 != 0 || reinterpret_cast<std::uintptr_t>(out) % 64 != 0) return false;
  untranspose2_fused<true>(reinterpret_cast<const std::uint8_t*>(in), reinterpret_cast<std::uint8_t*>(out), n);
  return true;
}

void stream_fence() { _mm_sfence(); }

}  // namespace lclstream::avx512
