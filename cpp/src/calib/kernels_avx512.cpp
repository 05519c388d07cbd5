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

namespace {

/// k-th smallest of at most 16 values: rank of each against all, in one vector.
float kth_small(const float* a, std::size_t n, std::size_t k) {
  const __mmask16 m = static_cast<__mmask16>((1U << n) - 1U);
  const __m512 y = _mm512_maskz_loadu_ps(m, a);
  for (std::size_t i = 0; i + 1 < n; ++i) {
    const __m512 x = _mm512_set1_ps(a[i]);
    const auto lt = static_cast<std::size_t>(__builtin_popcount(_mm512_mask_cmp_ps_mask(m, y, x, _CMP_LT_OQ)));
    const auto le = static_cast<std::size_t>(__builtin_popcount(_mm512_mask_cmp_ps_mask(m, y, x, _CMP_LE_OQ)));
    if (lt <= k && k < le) return a[i];
  }
  return a[n - 1];
}

/// k-th smallest of a[0..n) by quickselect with three-way vector partitions: the "less"
/// side is compressed in place (the write position never passes the read position), the
/// "greater" side into `other`; the two buffers swap roles as the search narrows. Both
/// buffers need 16 floats of slack past n (compress to a register, then a full store: the
/// memory form of vcompressps is microcoded and slow on AMD Zen).
float kth(float* a, float* other, std::size_t n, std::size_t k) {
  while (n > 16) {
    const float p0 = a[0], p1 = a[n / 2], p2 = a[n - 1];
    const float lo01 = p0 < p1 ? p0 : p1, hi01 = p0 < p1 ? p1 : p0;
    const float m2 = hi01 < p2 ? hi01 : p2;
    const float pivot = lo01 < m2 ? m2 : lo01;  // median of 3
    const __m512 pv = _mm512_set1_ps(pivot);
    std::size_t nl = 0, ng = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m512 v = _mm512_loadu_ps(a + i);
      const __mmask16 lt = _mm512_cmp_ps_mask(v, pv, _CMP_LT_OQ);
      const __mmask16 gt = _mm512_cmp_ps_mask(v, pv, _CMP_GT_OQ);
      _mm512_storeu_ps(a + nl, _mm512_maskz_compress_ps(lt, v));  // full stores: buffers have
      _mm512_storeu_ps(other + ng, _mm512_maskz_compress_ps(gt, v));  // 16 floats of slack
      nl += static_cast<std::size_t>(__builtin_popcount(lt));
      ng += static_cast<std::size_t>(__builtin_popcount(gt));
    }
    if (i < n) {
      const __mmask16 m = static_cast<__mmask16>((1U << (n - i)) - 1U);
      const __m512 v = _mm512_maskz_loadu_ps(m, a + i);
      const __mmask16 lt = _mm512_mask_cmp_ps_mask(m, v, pv, _CMP_LT_OQ);
      const __mmask16 gt = _mm512_mask_cmp_ps_mask(m, v, pv, _CMP_GT_OQ);
      _mm512_storeu_ps(a + nl, _mm512_maskz_compress_ps(lt, v));  // full stores: buffers have
      _mm512_storeu_ps(other + ng, _mm512_maskz_compress_ps(gt, v));  // 16 floats of slack
      nl += static_cast<std::size_t>(__builtin_popcount(lt));
      ng += static_cast<std::size_t>(__builtin_popcount(gt));
    }
    const std::size_t neq = n - nl - ng;
    if (k < nl) {
      n = nl;
    } else if (k < nl + neq) {
      return pivot;
    } else {
      k -= nl + neq;
      n = ng;
      float* const t = a;
      a = other;
      other = t;
    }
  }
  return kth_small(a, n, k);
}

}  // namespace

float median_of(float* v, std::size_t n, float* scratch) {
  float* const work = scratch;             // n + 16 floats
  float* const other = scratch + n + 16;   // n + 16 floats
  for (std::size_t i = 0; i < n; ++i) work[i] = v[i];
  const float hi = kth(work, other, n, n / 2);
  if (n % 2 != 0) return hi;
  // Lower middle: the largest value below hi if at least n/2 values are below it, else hi.
  const __m512 hv = _mm512_set1_ps(hi);
  __m512 mx = _mm512_set1_ps(-__builtin_inff());
  std::size_t below = 0;
  for (std::size_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1U << (n - i)) - 1U);
    const __m512 x = _mm512_maskz_loadu_ps(m, v + i);
    const __mmask16 lt = _mm512_mask_cmp_ps_mask(m, x, hv, _CMP_LT_OQ);
    below += static_cast<std::size_t>(__builtin_popcount(lt));
    mx = _mm512_mask_max_ps(mx, lt, mx, x);
  }
  const float lo = below >= n / 2 ? _mm512_reduce_max_ps(mx) : hi;
  return (lo + hi) / 2.0F;
}

// Common-mode passes: groups of 16 pixels all in stage 0 (the common case) are vector code;
// any other group goes lane by lane through the shared scalar helpers.
std::size_t cm_gather(const Tables& t, const CmFlags& f, const std::uint16_t* raw, std::size_t n,
                      float threshold, float* x, std::uint8_t* stage, float* cand) {
  const __m256i slow = _mm256_set1_epi16(static_cast<short>(t.slow_bits));
  const __m256i dmask = _mm256_set1_epi16(static_cast<short>(t.data_mask));
  const __m512 thr = _mm512_set1_ps(threshold);
  const __m128i two = _mm_set1_epi8(2);
  std::size_t nc = 0, i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i r = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(raw + i));
    if (_mm256_test_epi16_mask(r, slow) != 0) {
      for (std::size_t k = i; k < i + 16; ++k) cm_gather_one(t, f, raw[k], k, threshold, x, stage, cand, nc);
      continue;
    }
    const __m512 d = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm256_and_si256(r, dmask)));
    const __m512 v = _mm512_sub_ps(d, _mm512_loadu_ps(t.poff[0] + i));
    _mm512_storeu_ps(x + i, v);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(stage + i), _mm_setzero_si128());
    const __m128i fl = _mm_loadu_si128(reinterpret_cast<const __m128i*>(f.flags[0] + i));
    const __mmask16 c = _mm512_mask_cmp_ps_mask(_mm_test_epi8_mask(fl, two), v, thr, _CMP_LT_OQ);
    _mm512_storeu_ps(cand + nc, _mm512_maskz_compress_ps(c, v));
    nc += static_cast<std::size_t>(__builtin_popcount(c));
  }
  for (; i < n; ++i) cm_gather_one(t, f, raw[i], i, threshold, x, stage, cand, nc);
  return nc;
}

namespace {

template <Kind K>
std::uint64_t cm_apply(const Tables& t, const CmFlags& f, const float* x, const std::uint8_t* stage,
                       std::size_t n, float cm, OutT<K>* out) {
  const Consts c{_mm512_setzero_si512(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                 _mm512_set1_ps(t.photon_energy)};
  const __m512 cmv = _mm512_set1_ps(cm);
  const __m128i one = _mm_set1_epi8(1);
  std::uint64_t invalid = 0;
  std::size_t i = 0;
  auto lane = [&](std::size_t k) {
    const float v = cm_value_one(t, f, x, stage, k, cm, invalid);
    if constexpr (K == Kind::f32) {
      out[k] = v;
    } else if constexpr (K == Kind::u16) {
      out[k] = static_cast<std::uint16_t>(photons_of(v, t.photon_energy, kLimitU16, 0xffffU));
    } else {
      out[k] = photons_of(v, t.photon_energy, kLimitU32, 0xffffffffU);
    }
  };
  for (; i + 16 <= n; i += 16) {
    const __m128i st = _mm_loadu_si128(reinterpret_cast<const __m128i*>(stage + i));
    if (!_mm_testz_si128(st, st)) {
      for (std::size_t k = i; k < i + 16; ++k) lane(k);
      continue;
    }
    const __m128i fl = _mm_loadu_si128(reinterpret_cast<const __m128i*>(f.flags[0] + i));
    __m512 v = _mm512_loadu_ps(x + i);
    v = _mm512_mask_sub_ps(v, _mm_test_epi8_mask(fl, one), v, cmv);
    store16<K, false>(out, i, _mm512_mul_ps(v, _mm512_loadu_ps(t.gfac[0] + i)), c);
  }
  for (; i < n; ++i) lane(i);
  return invalid;
}

}  // namespace

std::uint64_t cm_apply_f32(const Tables& t, const CmFlags& f, const float* x, const std::uint8_t* stage,
                           std::size_t n, float cm, float* out) {
  return cm_apply<Kind::f32>(t, f, x, stage, n, cm, out);
}
std::uint64_t cm_apply_u16(const Tables& t, const CmFlags& f, const float* x, const std::uint8_t* stage,
                           std::size_t n, float cm, std::uint16_t* out) {
  return cm_apply<Kind::u16>(t, f, x, stage, n, cm, out);
}
std::uint64_t cm_apply_u32(const Tables& t, const CmFlags& f, const float* x, const std::uint8_t* stage,
                           std::size_t n, float cm, std::uint32_t* out) {
  return cm_apply<Kind::u32>(t, f, x, stage, n, cm, out);
}

}  // namespace lclstream::calib::detail::avx512
