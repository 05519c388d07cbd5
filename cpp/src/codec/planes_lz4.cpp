// LZ4 block encoder for bit-transposed blocks (bslz4).
//
// A bitshuffled block is 8*E bit planes, each a contiguous run of n/8 bytes. Planes fall into
// four kinds, and each kind has a cheap encoding that is still an ordinary LZ4 block:
//  * constant (every byte the same, e.g. unused high bits): one literal byte (or none, when
//    the previous byte already has that value) and a match with offset 1 over the rest;
//  * noisy (bits flip at random, e.g. the low bits of pedestal + noise): LZ4 could not
//    shrink them, so they are emitted as literals without searching;
//  * sparse (70%+ zero bytes, e.g. photon counts): zero runs of 4+ bytes become matches
//    (offset 1 after a literal zero, or a copy of an earlier zero run at least as long), the
//    bytes between them literals. The runs come from a nonzero-byte bit mask (one vector
//    compare per 64 bytes; run starts by shifts and ANDs, run ends by tzcnt), so no byte
//    loop, no hash table and no liblz4 call; the mask is the same on every ISA, so are the bytes;
//  * everything else (structured planes): runs of such planes go through liblz4,
//    and its sequences are spliced into ours (its first sequence absorbs our pending
//    literals, its final literals become our pending literals).
// LZ4 block rules kept: every match starts at least 12 and ends at least 5 bytes before the
// block end, and the block ends with a literal-only sequence, so LZ4_decompress_safe and
// LZ4_decompress_fast (hdf5plugin's LZ4 filter uses it) read it.
#include <lz4.h>

#include <bit>
#include <cstdint>
#include <cstring>

#include "codec/codec_internal.hpp"
#include "lclstream/isa.hpp"

namespace lclstream {
namespace scalar {
namespace {
// Without -mpopcnt std::popcount becomes a libgcc call; this inlines.
inline int popcnt64(std::uint64_t v) noexcept {
  v = v - ((v >> 1) & 0x5555555555555555ULL);
  v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
  v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
  return static_cast<int>((v * 0x0101010101010101ULL) >> 56);
}
#include "codec/classify_body.inc"
}  // namespace
void classify_planes(const std::uint8_t* planes, std::size_t nb, std::size_t nplanes, codec_detail::PlaneInfo* info) {
  classify_scalar_loop(planes, nb, nplanes, info);
}
void nonzero_mask(const std::uint8_t* x, std::size_t n, std::uint64_t* out) { nonzero_mask_tail(x, 0, n, out); }
}  // namespace scalar

namespace codec_detail {

void classify_planes(const std::uint8_t* planes, std::size_t nb, std::size_t nplanes, PlaneInfo* info) {
  switch (active_isa()) {
    case Isa::avx512: return avx512::classify_planes(planes, nb, nplanes, info);
    case Isa::avx2: return avx2::classify_planes(planes, nb, nplanes, info);
    case Isa::scalar: break;
  }
  scalar::classify_planes(planes, nb, nplanes, info);
}

void nonzero_mask(const std::uint8_t* x, std::size_t n, std::uint64_t* out) {
  switch (active_isa()) {
    case Isa::avx512: return avx512::nonzero_mask(x, n, out);
    case Isa::avx2: return avx2::nonzero_mask(x, n, out);
    case Isa::scalar: break;
  }
  scalar::nonzero_mask(x, n, out);
}
namespace {

constexpr std::size_t kMfLimit = 12;      // a match must start at least this far before the end
constexpr std::size_t kLastLiterals = 5;  // and end at least this far before it

struct Emitter {
  const std::uint8_t* in;
  std::size_t len;
  std::uint8_t* op;
  std::uint8_t* oend;
  std::size_t lit = 0;   // pending literals are in[lit, current position)
  std::size_t zpos = 0;  // the latest long run of zero bytes: in[zpos, zpos + zlen)
  std::size_t zlen = 0;
  bool ok = true;

  static std::size_t ext_bytes(std::size_t v) { return v >= 15 ? 1 + (v - 15) / 255 : 0; }
  std::uint8_t* put_len(std::uint8_t* p, std::size_t v) {
    v -= 15;
    while (v >= 255) {
      *p++ = 255;
      v -= 255;
    }
    *p++ = static_cast<std::uint8_t>(v);
    return p;
  }

  // Literals in[lit, lit_end), then a match of `mlen` (>= 4) bytes at `offset`.
  void sequence(std::size_t lit_end, std::size_t offset, std::size_t mlen) {
    const std::size_t ll = lit_end - lit, ml = mlen - 4;
    if (static_cast<std::size_t>(oend - op) < 3 + ll + ext_bytes(ll) + ext_bytes(ml)) {
      ok = false;
      return;
    }
    std::uint8_t* tok = op++;
    std::uint8_t t = static_cast<std::uint8_t>((ll >= 15 ? 15 : ll) << 4);
    if (ll >= 15) op = put_len(op, ll);
    if (ll <= 16 && lit + 16 <= len && static_cast<std::size_t>(oend - op) >= 16 + 2 + 1 + ext_bytes(ml)) {
      std::memcpy(op, in + lit, 16);  // fixed size: no library call; the extra bytes get overwritten
    } else {
      std::memcpy(op, in + lit, ll);
    }
    op += ll;
    *op++ = static_cast<std::uint8_t>(offset);
    *op++ = static_cast<std::uint8_t>(offset >> 8);
    t = static_cast<std::uint8_t>(t | (ml >= 15 ? 15 : ml));
    if (ml >= 15) op = put_len(op, ml);
    *tok = t;
    lit = lit_end + mlen;
  }

  void finish() {
    const std::size_t ll = len - lit;
    if (static_cast<std::size_t>(oend - op) < 1 + ll + ext_bytes(ll)) {
      ok = false;
      return;
    }
    *op++ = static_cast<std::uint8_t>((ll >= 15 ? 15 : ll) << 4);
    if (ll >= 15) op = put_len(op, ll);
    std::memcpy(op, in + lit, ll);
    op += ll;
  }

  // [s, e) holds only the byte c. The match also takes in the run of c that ends the pending
  // literals (e.g. the zero tail of a sparse plane) and the c bytes that follow e.
  void run(std::size_t s, std::size_t e, std::uint8_t c) {
    if (len < kMfLimit + 5) return;
    const std::size_t limit = len - kLastLiterals;
    if (s < lit) s = lit;
    const std::uint64_t pat = 0x0101010101010101ULL * c;
    for (std::uint64_t v; e + 8 <= limit; e += 8) {  // 8 bytes at a time (little-endian)
      std::memcpy(&v, in + e, 8);
      if (v != pat) {
        e += static_cast<std::size_t>(std::countr_zero(v ^ pat)) / 8;
        break;
      }
    }
    while (e < limit && in[e] == c) ++e;
    if (e > limit) e = limit;
    if (s >= e) return;
    std::size_t r = s;
    for (std::uint64_t v; r >= lit + 8; r -= 8) {
      std::memcpy(&v, in + r - 8, 8);
      if (v != pat) {
        r -= static_cast<std::size_t>(std::countl_zero(v ^ pat)) / 8;
        break;
      }
    }
    while (r > lit && in[r - 1] == c) --r;
    const std::size_t m = (r > 0 && in[r - 1] == c) ? r : r + 1;  // in[m - 1] == c
    if (e >= m + 4 && m <= len - kMfLimit) sequence(m, 1, e - m);
    if (c == 0 && e - r > zlen) {
      zpos = r;
      zlen = e - r;
    }
  }

  // [a, b) is mostly zero bytes: zero runs of 4+ bytes become matches, from an earlier zero
  // run at least as long when one is in reach, else with offset 1 after one literal zero.
  // The runs are read off a nonzero-byte bit mask (one vector compare per 64 bytes, then
  // tzcnt), which every ISA computes identically: the sequences do not depend on the ISA.
  // `mask` has room for (b - a) / 64 + 1 words.
  void sparse(std::size_t a, std::size_t b, std::uint64_t* mask) {
    if (a < lit) a = lit;
    if (len < kMfLimit + 5 || a >= b) return;
    const std::size_t mlimit = len - kLastLiterals, slimit = len - kMfLimit;
    const std::size_t n = b - a, nw = (n + 63) / 64;
    nonzero_mask(in + a, n, mask);
    // Bits past the region read as nonzero, so that a zero run stops at b.
    if (n % 64) mask[nw - 1] |= ~std::uint64_t{0} << (n % 64);
    // Offsets (relative to a) of the next zero / nonzero byte at or after r, or n.
    auto next = [&](std::size_t r, std::uint64_t flip) {
      std::size_t w = r / 64;
      std::uint64_t x = (mask[w] ^ flip) & (~std::uint64_t{0} << (r % 64));
      while (x == 0) {
        if (++w >= nw) return n;
        x = mask[w] ^ flip;
      }
      const std::size_t p = w * 64 + static_cast<std::size_t>(std::countr_zero(x));
      return p < n ? p : n;
    };
    // Starts of zero runs of 4+ bytes in word w: shorter runs never become matches.
    auto long_starts = [&](std::size_t w) {
      const std::uint64_t z = ~mask[w];
      const std::uint64_t zn = w + 1 < nw ? ~mask[w + 1] : 0;  // past the region: nonzero
      const std::uint64_t zp = w > 0 ? ~mask[w - 1] : 0;       // before it: nonzero
      const std::uint64_t z4 = z & ((z >> 1) | (zn << 63)) & ((z >> 2) | (zn << 62)) & ((z >> 3) | (zn << 61));
      return z4 & ~((z << 1) | (zp >> 63));
    };
    // The state lives in locals here: stores through the uint8_t output pointer could alias
    // the members, which would make the compiler reload them after every byte written.
    const std::uint8_t* const src = in;
    const std::size_t srclen = len;
    std::uint8_t* o = op;
    std::uint8_t* const oe = oend;
    std::size_t lt = lit, zp = zpos, zl = zlen;
    std::size_t w = 0;
    std::uint64_t starts = long_starts(0);
    for (;;) {
      while (starts == 0) {
        if (++w >= nw) goto done;
        starts = long_starts(w);
      }
      {
        const std::size_t r = w * 64 + static_cast<std::size_t>(std::countr_zero(starts));
        const std::size_t rj = next(r + 4, 0);  // the nonzero byte that ends the run
        const std::size_t i = a + r, j = a + rj, g = rj - r;
        const bool far = zl < g || i - zp > 65535;
        const std::size_t m = far ? i + 1 : i;
        const std::size_t e = j < mlimit ? j : mlimit;
        if (m <= slimit && e >= m + 4) {
          const std::size_t off = far ? 1 : i - zp, ll = m - lt, ml = e - m - 4;
          if (ll < 15 && ml < 15 && lt + 16 <= srclen && oe - o >= 32) {  // the common short sequence
            o[0] = static_cast<std::uint8_t>((ll << 4) | ml);
            std::memcpy(o + 1, src + lt, 16);  // fixed size; the extra bytes get overwritten
            o += 1 + ll;
            o[0] = static_cast<std::uint8_t>(off);
            o[1] = static_cast<std::uint8_t>(off >> 8);
            o += 2;
            lt = e;
          } else {
            op = o;
            lit = lt;
            sequence(m, off, e - m);
            o = op;
            lt = lit;
            if (!ok) goto done;
          }
        }
        if (far) {
          zp = i;
          zl = g;
        }
        if (rj / 64 != w) {  // the run ends in a later word
          w = rj / 64;
          if (w >= nw) goto done;
          starts = long_starts(w) & (~std::uint64_t{0} << (rj % 64));
        } else {
          starts &= starts - 1;
        }
      }
    }
  done:
    op = o;
    lit = lt;
    zpos = zp;
    zlen = zl;
  }

  // [a, b) through liblz4; its sequences become ours.
  void lz4(std::size_t a, std::size_t b, void* state, std::uint8_t* tmp, std::size_t tmp_cap) {
    if (a < lit) a = lit;  // a preceding run may already cover the region's first bytes
    if (b <= a + kMfLimit) return;
    // extState resets the whole table: the output must not depend on what this thread
    // compressed before (LZ4_resetStream_fast keeps stale entries that change the parse).
    const int r = LZ4_compress_fast_extState(state, reinterpret_cast<const char*>(in + a), reinterpret_cast<char*>(tmp),
                                             static_cast<int>(b - a), static_cast<int>(tmp_cap), 1);
    if (r <= 0) return;  // leave the region as literals
    const std::uint8_t* ip = tmp;
    const std::uint8_t* const iend = tmp + r;
    auto read_len = [&](std::size_t v) {
      if (v == 15) {
        std::uint8_t x;
        do {
          x = *ip++;
          v += x;
        } while (x == 255);
      }
      return v;
    };
    // First sequence: our pending literals join its literals.
    std::uint8_t t = *ip++;
    std::size_t ll = read_len(t >> 4);
    ip += ll;
    if (ip >= iend) return;  // no match at all: the whole region stays literal
    std::size_t offset = std::size_t(ip[0]) | (std::size_t(ip[1]) << 8);
    ip += 2;
    std::size_t ml = read_len(t & 15u) + 4;
    sequence(a + ll, offset, ml);
    if (!ok) return;
    // Middle sequences are copied as they are; the last one's literals stay pending.
    std::size_t pos = a + ll + ml;
    const std::uint8_t* mid = ip;
    const std::uint8_t* last = ip;
    while (ip < iend) {
      last = ip;
      t = *ip++;
      ll = read_len(t >> 4);
      ip += ll;
      if (ip >= iend) break;
      pos += ll;
      ip += 2;
      pos += read_len(t & 15u) + 4;
    }
    const std::size_t bytes = static_cast<std::size_t>(last - mid);
    if (static_cast<std::size_t>(oend - op) < bytes) {
      ok = false;
      return;
    }
    std::memcpy(op, mid, bytes);
    op += bytes;
    lit = pos;
  }
};

}  // namespace

std::size_t encode_planes_lz4(const std::byte* planes, std::size_t plane_bytes, std::size_t nplanes, std::byte* out,
                              std::size_t cap, void* lz4_state, std::byte* tmp, std::size_t tmp_cap) {
  const auto* in = reinterpret_cast<const std::uint8_t*>(planes);
  const std::size_t len = plane_bytes * nplanes;
  Emitter em{in, len, reinterpret_cast<std::uint8_t*>(out), reinterpret_cast<std::uint8_t*>(out) + cap};
  constexpr std::size_t kMaxPlanes = 64;
  PlaneInfo info[kMaxPlanes];
  // The sparse regions' nonzero masks live in `tmp` (LZ4_compressBound(len) >= len / 8 + 8
  // bytes, 8-aligned); liblz4 output, which also goes there, is never needed at the same time.
  auto* mask = reinterpret_cast<std::uint64_t*>(tmp);
  const bool planned = nplanes <= kMaxPlanes && plane_bytes >= 16 && tmp_cap >= len / 8 + 8 &&
                       reinterpret_cast<std::uintptr_t>(tmp) % alignof(std::uint64_t) == 0;
  if (planned) {
    classify_planes(in, plane_bytes, nplanes, info);
    std::size_t p = 0;
    while (p < nplanes && em.ok) {
      std::size_t q = p + 1;
      if (info[p].kind == PlaneKind::constant) {
        while (q < nplanes && info[q].kind == PlaneKind::constant && info[q].value == info[p].value) ++q;
        em.run(p * plane_bytes, q * plane_bytes, info[p].value);
      } else if (info[p].kind == PlaneKind::sparse) {
        while (q < nplanes && info[q].kind == PlaneKind::sparse) ++q;
        em.sparse(p * plane_bytes, q * plane_bytes, mask);
      } else if (info[p].kind == PlaneKind::other) {
        while (q < nplanes && info[q].kind == PlaneKind::other) ++q;
        em.lz4(p * plane_bytes, q * plane_bytes, lz4_state, reinterpret_cast<std::uint8_t*>(tmp), tmp_cap);
      }
      p = q;
    }
    if (em.ok) em.finish();
  }
  if (!planned || !em.ok) {  // tiny or unusual blocks: plain liblz4
    const int r = LZ4_compress_fast_extState(lz4_state, reinterpret_cast<const char*>(planes), reinterpret_cast<char*>(out),
                                             static_cast<int>(len), static_cast<int>(cap), 1);
    return r > 0 ? static_cast<std::size_t>(r) : 0;
  }
  return static_cast<std::size_t>(em.op - reinterpret_cast<std::uint8_t*>(out));
}

}  // namespace codec_detail
}  // namespace lclstream
