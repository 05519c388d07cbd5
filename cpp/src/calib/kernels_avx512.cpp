// AVX-512 calibration kernels: 16 pixels per step. Stage-0 constants are read contiguously;
// a group with any gain bit set patches its stage-1/2 lanes with masked loads (rare in real
// data, so the branch predicts well). Large outputs go out with streaming stores so the
// output does not evict the constants from cache.
// GCC 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "calib/kernels.hpp"

namespace lclstream::calib::detail::avx512 {
namespace {

enum class Kind { f32, u16, u32 };

template <Kind K>
using OutT = std::conditional_t<K == Kind::f32, float,
                                std::conditional_t<K == Kind::u16, std::uint16_t, std::uint32_t>>;

template <Kind K>
inline void one(const Tables& t, const std::uint16_t* raw, OutT<K>* out, std::size_t i,
                std::uint64_t& invalid) {
  const float v = pixel(t, raw[i], i, invalid);
  if constexpr (K == Kind::f32) {
    out[i] = v;
  } else if constexpr (K == Kind::u16) {
    out[i] = static_cast<std::uint16_t>(photons_of(v, t.photon_energy, kLimitU16, 0xffffU));
  } else {
    out[i] = photons_of(v, t.photon_energy, kLimitU32, 0xffffffffU);
  }
}

struct Consts {
  __m512i stage_tbl;
  __m256i slow;
  __m256i dmask;
  __m512 energy;
};

inline __m512 value16(const Tables& t, const Consts& c, const std::uint16_t* raw, std::size_t i,
                      std::uint64_t& invalid) {
  const __m256i r = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(raw + i));
  const __m512 d = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm256_and_si256(r, c.dmask)));
  __m512 p = _mm512_loadu_ps(t.poff[0] + i);
  __m512 g = _mm512_loadu_ps(t.gfac[0] + i);
  const __mmask16 slow = _mm256_test_epi16_mask(r, c.slow);
  if (__builtin_expect(slow != 0, 0)) {
    const __m512i code = _mm512_srli_epi32(_mm512_cvtepu16_epi32(r), 14);
    const __m512i st = _mm512_permutexvar_epi32(code, c.stage_tbl);
    const __mmask16 m1 = _mm512_cmpeq_epi32_mask(st, _mm512_set1_epi32(1));
    const __mmask16 m2 = _mm512_cmpeq_epi32_mask(st, _mm512_set1_epi32(2));
    const __mmask16 mi = _mm512_cmpeq_epi32_mask(st, _mm512_set1_epi32(3));
    if (m1 != 0) {
      p = _mm512_mask_loadu_ps(p, m1, t.poff[1] + i);
      g = _mm512_mask_loadu_ps(g, m1, t.gfac[1] + i);
    }
    if (m2 != 0) {
      p = _mm512_mask_loadu_ps(p, m2, t.poff[2] + i);
      g = _mm512_mask_loadu_ps(g, m2, t.gfac[2] + i);
    }
    invalid += static_cast<std::uint64_t>(__builtin_popcount(mi));
    return _mm512_maskz_mov_ps(static_cast<__mmask16>(~mi), _mm512_mul_ps(_mm512_sub_ps(d, p), g));
  }
  return _mm512_mul_ps(_mm512_sub_ps(d, p), g);
}

template <Kind K, bool Stream>
inline void store16(OutT<K>* out, std::size_t i, __m512 v, const Consts& c) {
  if constexpr (K == Kind::f32) {
    if constexpr (Stream) {
      _mm512_stream_ps(out + i, v);
    } else {
      _mm512_storeu_ps(out + i, v);
    }
  } else {
    __m512 q = _mm512_div_ps(v, c.energy);
    q = _mm512_max_ps(q, _mm512_setzero_ps());  // NaN -> 0 (second operand)
    if constexpr (K == Kind::u16) {
      q = _mm512_min_ps(q, _mm512_set1_ps(kLimitU16));
      const __m256i w = _mm512_cvtepi32_epi16(
          _mm512_cvt_roundps_epi32(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      if constexpr (Stream) {
        _mm256_stream_si256(reinterpret_cast<__m256i*>(out + i), w);
      } else {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), w);
      }
    } else {
      const __mmask16 big = _mm512_cmp_ps_mask(q, _mm512_set1_ps(kLimitU32), _CMP_GE_OQ);
      __m512i w = _mm512_cvt_roundps_epu32(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      w = _mm512_mask_mov_epi32(w, big, _mm512_set1_epi32(-1));
      if constexpr (Stream) {
        _mm512_stream_si512(reinterpret_cast<__m512i*>(out + i), w);
      } else {
        _mm512_storeu_si512(out + i, w);
      }
    }
  }
}

template <Kind K, bool Stream>
std::uint64_t loop(const Tables& t, const std::uint16_t* raw, OutT<K>* out, std::size_t n) {
  const Consts c{_mm512_setr_epi32(t.stage_of_code[0], t.stage_of_code[1], t.stage_of_code[2],
                                   t.stage_of_code[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
                 _mm256_set1_epi16(static_cast<short>(t.slow_bits)),
                 _mm256_set1_epi16(static_cast<short>(t.data_mask)), _mm512_set1_ps(t.photon_energy)};
  std::uint64_t invalid = 0;
  std::size_t i = 0;
  if constexpr (Stream) {
    constexpr std::uintptr_t align = 16 * sizeof(OutT<K>);
    while (i < n && reinterpret_cast<std::uintptr_t>(out + i) % align != 0) one<K>(t, raw, out, i++, invalid);
  }
#pragma GCC unroll 2
  for (; i + 16 <= n; i += 16) store16<K, Stream>(out, i, value16(t, c, raw, i, invalid), c);
  for (; i < n; ++i) one<K>(t, raw, out, i, invalid);
  if constexpr (Stream) _mm_sfence();
  return invalid;
}

template <Kind K>
std::uint64_t run(const Tables& t, const std::uint16_t* raw, OutT<K>* out, std::size_t n, bool stream) {
  if (stream && reinterpret_cast<std::uintptr_t>(out) % sizeof(OutT<K>) == 0) {
    return loop<K, true>(t, raw, out, n);
  }
  return loop<K, false>(t, raw, out, n);
}

}  // namespace

std::uint64_t calib_f32(const Tables& t, const std::uint16_t* raw, float* out, std::size_t n, bool stream) {
  return run<Kind::f32>(t, raw, out, n, stream);
}
std::uint64_t calib_u16(const Tables& t, const std::uint16_t* raw, std::uint16_t* out, std::size_t n,
                        bool stream) {
  return run<Kind::u16>(t, raw, out, n, stream);
}
std::uint64_t calib_u32(const Tables& t, const std::uint16_t* raw, std::uint32_t* out, std::size_t n,
                        bool stream) {
  return run<Kind::u32>(t, raw, out, n, stream);
}

// Branch-free selection for a bank's few candidates: the k-th smallest is the x with
// count(< x) <= k < count(<= x); each candidate is ranked against all of them 16 at a time.
float median_of(float* v, std::size_t n) {
  if (n > 256) return scalar::median_of(v, n);
  const std::size_t k_hi = n / 2, k_lo = (n - 1) / 2;
  const std::size_t full = n / 16;
  const __mmask16 tail = static_cast<__mmask16>((1U << (n % 16)) - 1U);
  float lo = 0.0F, hi = 0.0F;
  bool have_lo = false, have_hi = false;
  for (std::size_t i = 0; i < n && !(have_lo && have_hi); ++i) {
    const __m512 x = _mm512_set1_ps(v[i]);
    std::size_t lt = 0, le = 0;
    for (std::size_t b = 0; b < full; ++b) {
      const __m512 y = _mm512_loadu_ps(v + 16 * b);
      lt += static_cast<std::size_t>(__builtin_popcount(_mm512_cmp_ps_mask(y, x, _CMP_LT_OQ)));
      le += static_cast<std::size_t>(__builtin_popcount(_mm512_cmp_ps_mask(y, x, _CMP_LE_OQ)));
    }
    if (tail != 0) {
      const __m512 y = _mm512_maskz_loadu_ps(tail, v + 16 * full);
      lt += static_cast<std::size_t>(__builtin_popcount(_mm512_mask_cmp_ps_mask(tail, y, x, _CMP_LT_OQ)));
      le += static_cast<std::size_t>(__builtin_popcount(_mm512_mask_cmp_ps_mask(tail, y, x, _CMP_LE_OQ)));
    }
    if (lt <= k_lo && k_lo < le) {
      lo = v[i];
      have_lo = true;
    }
    if (lt <= k_hi && k_hi < le) {
      hi = v[i];
      have_hi = true;
    }
  }
  return n % 2 != 0 ? hi : (lo + hi) / 2.0F;
}

}  // namespace lclstream::calib::detail::avx512
