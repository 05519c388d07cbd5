// AVX2 calibration kernels: 8 pixels per step, stage-0 constants read contiguously; a group
// with any gain bit set is computed lane by lane with the scalar formula (rare in real data).
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "calib/kernels.hpp"

namespace lclstream::calib::detail::avx2 {
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

inline __m256 value8(const Tables& t, const std::uint16_t* raw, std::size_t i, __m128i slow,
                     __m128i dmask, std::uint64_t& invalid) {
  const __m128i r = _mm_loadu_si128(reinterpret_cast<const __m128i*>(raw + i));
  if (__builtin_expect(!_mm_testz_si128(r, slow), 0)) {
    alignas(32) float tmp[8];
    for (std::size_t k = 0; k < 8; ++k) tmp[k] = pixel(t, raw[i + k], i + k, invalid);
    return _mm256_load_ps(tmp);
  }
  const __m256 d = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm_and_si128(r, dmask)));
  return _mm256_mul_ps(_mm256_sub_ps(d, _mm256_loadu_ps(t.poff[0] + i)), _mm256_loadu_ps(t.gfac[0] + i));
}

template <Kind K, bool Stream>
inline void store8(OutT<K>* out, std::size_t i, __m256 v, __m256 energy) {
  if constexpr (K == Kind::f32) {
    if constexpr (Stream) {
      _mm256_stream_ps(out + i, v);
    } else {
      _mm256_storeu_ps(out + i, v);
    }
  } else {
    __m256 q = _mm256_div_ps(v, energy);
    q = _mm256_max_ps(q, _mm256_setzero_ps());  // NaN -> 0 (second operand)
    if constexpr (K == Kind::u16) {
      q = _mm256_min_ps(q, _mm256_set1_ps(kLimitU16));
      const __m256i n = _mm256_cvtps_epi32(q);  // MXCSR default: nearest, ties to even
      const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(n), _mm256_extracti128_si256(n, 1));
      if constexpr (Stream) {
        _mm_stream_si128(reinterpret_cast<__m128i*>(out + i), w);
      } else {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), w);
      }
    } else {
      const __m256 two31 = _mm256_set1_ps(2147483648.0F);
      const __m256 big = _mm256_cmp_ps(q, _mm256_set1_ps(kLimitU32), _CMP_GE_OQ);
      const __m256 hi = _mm256_cmp_ps(q, two31, _CMP_GE_OQ);
      q = _mm256_blendv_ps(q, _mm256_sub_ps(q, two31), hi);  // exact: q >= 2^31 is an integer
      __m256i n = _mm256_cvtps_epi32(q);
      n = _mm256_xor_si256(n, _mm256_and_si256(_mm256_castps_si256(hi), _mm256_set1_epi32(INT32_MIN)));
      n = _mm256_or_si256(n, _mm256_castps_si256(big));
      if constexpr (Stream) {
        _mm256_stream_si256(reinterpret_cast<__m256i*>(out + i), n);
      } else {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), n);
      }
    }
  }
}

template <Kind K, bool Stream>
std::uint64_t loop(const Tables& t, const std::uint16_t* raw, OutT<K>* out, std::size_t n) {
  const __m128i slow = _mm_set1_epi16(static_cast<short>(t.slow_bits));
  const __m128i dmask = _mm_set1_epi16(static_cast<short>(t.data_mask));
  const __m256 energy = _mm256_set1_ps(t.photon_energy);
  std::uint64_t invalid = 0;
  std::size_t i = 0;
  if constexpr (Stream) {
    constexpr std::uintptr_t align = 8 * sizeof(OutT<K>);
    while (i < n && reinterpret_cast<std::uintptr_t>(out + i) % align != 0) one<K>(t, raw, out, i++, invalid);
  }
#pragma GCC unroll 2
  for (; i + 8 <= n; i += 8) store8<K, Stream>(out, i, value8(t, raw, i, slow, dmask, invalid), energy);
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

// Branch-free selection (see the AVX-512 version), 8 candidates at a time.
float median_of(float* v, std::size_t n, float* scratch) {
  if (n > 128) return scalar::median_of(v, n, scratch);  // O(n^2) ranks lose to introselect beyond this
  const std::size_t k_hi = n / 2, k_lo = (n - 1) / 2;
  const std::size_t full = n / 8, rest = n % 8;
  alignas(32) float pad[8];
  for (std::size_t j = 0; j < 8; ++j) pad[j] = j < rest ? v[8 * full + j] : 0.0F;
  const __m256 tail = _mm256_load_ps(pad);
  const int tail_bits = static_cast<int>((1U << rest) - 1U);
  float lo = 0.0F, hi = 0.0F;
  bool have_lo = false, have_hi = false;
  for (std::size_t i = 0; i < n && !(have_lo && have_hi); ++i) {
    const __m256 x = _mm256_set1_ps(v[i]);
    std::size_t lt = 0, le = 0;
    for (std::size_t b = 0; b < full; ++b) {
      const __m256 y = _mm256_loadu_ps(v + 8 * b);
      lt += static_cast<std::size_t>(__builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(y, x, _CMP_LT_OQ)))));
      le += static_cast<std::size_t>(__builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(y, x, _CMP_LE_OQ)))));
    }
    if (rest != 0) {
      lt += static_cast<std::size_t>(__builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(tail, x, _CMP_LT_OQ)) & tail_bits)));
      le += static_cast<std::size_t>(__builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(tail, x, _CMP_LE_OQ)) & tail_bits)));
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

// Common-mode passes: groups of 8 pixels all in stage 0 are vector code; other groups go
// lane by lane through the shared scalar helpers. AVX2 has no compress instruction: a
// 256-entry table of lane permutations left-packs the candidates.
namespace {

struct PackTable {
  alignas(32) std::int32_t idx[256][8];
  constexpr PackTable() : idx{} {
    for (int m = 0; m < 256; ++m) {
      int k = 0;
      for (int lane = 0; lane < 8; ++lane) {
        if ((m >> lane) & 1) idx[m][k++] = lane;
      }
      for (; k < 8; ++k) idx[m][k] = 0;
    }
  }
};
// constexpr: built by the compiler, so no AVX2-compiled code runs at load time on any CPU.
constexpr PackTable kPack;

template <Kind K>
std::uint64_t cm_apply(const Tables& t, const CmFlags& f, const float* x, const std::uint8_t* stage,
                       std::size_t n, float cm, OutT<K>* out) {
  const __m256 cmv = _mm256_set1_ps(cm);
  const __m256 energy = _mm256_set1_ps(t.photon_energy);
  const __m256i one = _mm256_set1_epi32(1);
  std::uint64_t invalid = 0;
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
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i st = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(stage + i));
    if (!_mm_testz_si128(st, st)) {
      for (std::size_t k = i; k < i + 8; ++k) lane(k);
      continue;
    }
    const __m256i fl = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(f.flags[0] + i)));
    const __m256 sub = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(fl, one), one));
    __m256 v = _mm256_loadu_ps(x + i);
    v = _mm256_blendv_ps(v, _mm256_sub_ps(v, cmv), sub);
    store8<K, false>(out, i, _mm256_mul_ps(v, _mm256_loadu_ps(t.gfac[0] + i)), energy);
  }
  for (; i < n; ++i) lane(i);
  return invalid;
}

}  // namespace

std::size_t cm_gather(const Tables& t, const CmFlags& f, const std::uint16_t* raw, std::size_t n,
                      float threshold, float* x, std::uint8_t* stage, float* cand) {
  const __m128i slow = _mm_set1_epi16(static_cast<short>(t.slow_bits));
  const __m128i dmask = _mm_set1_epi16(static_cast<short>(t.data_mask));
  const __m256 thr = _mm256_set1_ps(threshold);
  const __m256i two = _mm256_set1_epi32(2);
  std::size_t nc = 0, i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i r = _mm_loadu_si128(reinterpret_cast<const __m128i*>(raw + i));
    if (!_mm_testz_si128(r, slow)) {
      for (std::size_t k = i; k < i + 8; ++k) cm_gather_one(t, f, raw[k], k, threshold, x, stage, cand, nc);
      continue;
    }
    const __m256 d = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm_and_si128(r, dmask)));
    const __m256 v = _mm256_sub_ps(d, _mm256_loadu_ps(t.poff[0] + i));
    _mm256_storeu_ps(x + i, v);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(stage + i), _mm_setzero_si128());
    const __m256i fl = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(f.flags[0] + i)));
    const __m256 ok = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(fl, two), two));
    const __m256 c = _mm256_and_ps(ok, _mm256_cmp_ps(v, thr, _CMP_LT_OQ));
    const auto bits = static_cast<unsigned>(_mm256_movemask_ps(c));
    const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(kPack.idx[bits]));
    _mm256_storeu_ps(cand + nc, _mm256_permutevar8x32_ps(v, perm));
    nc += static_cast<std::size_t>(__builtin_popcount(bits));
  }
  for (; i < n; ++i) cm_gather_one(t, f, raw[i], i, threshold, x, stage, cand, nc);
  return nc;
}
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

}  // namespace lclstream::calib::detail::avx2
