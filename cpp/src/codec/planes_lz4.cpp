// LZ4 block encoder for bit-transposed blocks (bslz4).
//
// A bitshuffled block is 8*E bit planes, each a contiguous run of n/8 bytes. Planes fall into
// these kinds, and each has a cheap encoding that is still an ordinary LZ4 block:
//  * constant (every byte the same, e.g. unused high bits): one literal byte (or none, when
//    the previous byte already has that value) and a match with offset 1 over the rest;
//  * noisy (bits flip at random, e.g. the low bits of pedestal + noise): LZ4 could not
//    shrink them, so they are emitted as literals without searching;
//  * sparse (80%+ zero bytes, e.g. photon counts, or 80%+ 0xFF bytes, e.g. a pedestal bit that
//    photons clear in a few pixels; in photon-count blocks, which have no 0xFF planes, from
//    40% zero bytes): runs of 4+ such bytes become matches (offset 1 after a literal, or a
//    copy of an earlier run at least as long), the bytes between them literals; in blocks of
//    raw ADC words and in those photon blocks, a lone byte between two runs matches an earlier
//    copy of "that byte, then a run" when one is in reach (a 256-entry table). The runs come
//    from a bit mask of the other bytes (one vector compare per 64 bytes; run starts by shifts
//    and ANDs, run ends by tzcnt), so no byte loop, no hash and no liblz4 call; the mask is the
//    same on every ISA, so are the bytes;
//  * copies: a sparse or structured plane that repeats an earlier plane of the block in 70%+ of
//    its bytes (photon pixels flip several bits of a pixel together, so those bits' planes are
//    copies of each other) becomes matches at that plane's distance, with literals where they
//    differ; chosen before encoding by counting differing bytes (a word at a time, pruned by
//    the first 64 bytes), and only when it leaves fewer bytes unmatched than the plane's runs;
//  * everything else (structured planes: 40-80% of one byte, e.g. pedestal bits that 10% of
//    pixels' photons flip; a match there is a coin flip and typically 4-6 bytes long): our own
//    LZ4 match finder (Emitter::lz), a hash table over the block's positions probed at every
//    other position without branches, then a greedy parse of the matching positions. It
//    replaced liblz4, whose table reset per call, its skipping and the re-parse of its output
//    into our sequences cost more than the search on these frames.
// bench_codec's family reports, per frame, how many planes took each path
// (bslz4_plane_paths).
// LZ4 block rules kept: every match starts at least 12 and ends at least 5 bytes before the
// block end, and the block ends with a literal-only sequence, so LZ4_decompress_safe and
// LZ4_decompress_fast (hdf5plugin's LZ4 filter uses it) read it.
#include <lz4.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lclstream/codec.hpp"

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
void nonzero_mask(const std::uint8_t* x, std::size_t n, std::uint64_t* out, std::uint8_t c) {
  nonzero_mask_tail(x, 0, n, out, c);
}
void differ_mask(const std::uint8_t* x, const std::uint8_t* y, std::size_t n, std::uint64_t* out) {
  differ_mask_tail(x, y, 0, n, out);
}
std::size_t count_differing(const std::uint8_t* x, const std::uint8_t* y, std::uint8_t c, std::size_t n,
                            std::size_t limit) {
  return count_differing_tail(x, y, c, 0, n, limit, 0);
}
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

void nonzero_mask(const std::uint8_t* x, std::size_t n, std::uint64_t* out, std::uint8_t c) {
  switch (active_isa()) {
    case Isa::avx512: return avx512::nonzero_mask(x, n, out, c);
    case Isa::avx2: return avx2::nonzero_mask(x, n, out, c);
    case Isa::scalar: break;
  }
  scalar::nonzero_mask(x, n, out, c);
}

void differ_mask(const std::uint8_t* x, const std::uint8_t* y, std::size_t n, std::uint64_t* out) {
  switch (active_isa()) {
    case Isa::avx512: return avx512::differ_mask(x, y, n, out);
    case Isa::avx2: return avx2::differ_mask(x, y, n, out);
    case Isa::scalar: break;
  }
  scalar::differ_mask(x, y, n, out);
}

std::size_t count_differing(const std::uint8_t* x, const std::uint8_t* y, std::uint8_t c, std::size_t n,
                            std::size_t limit) {
  switch (active_isa()) {
    case Isa::avx512: return avx512::count_differing(x, y, c, n, limit);
    case Isa::avx2: return avx2::count_differing(x, y, c, n, limit);
    case Isa::scalar: break;
  }
  return scalar::count_differing(x, y, c, n, limit);
}
namespace {

/// The earlier plane that plane p repeats best, as an offset back (0: none repeats it in at
/// least 70% of its bytes, or, for a sparse plane with `own` bytes equal to its dominant byte,
/// none leaves under half as many bytes different).
std::size_t best_reference(const std::uint8_t* in, std::size_t nb, std::size_t p, const PlaneInfo* info,
                           std::size_t own) {
  std::size_t best = 0, best_diff = nb * 3 / 10;
  // a sparse plane's own runs of its dominant byte already encode well: a copy must leave
  // under half as many bytes unmatched
  if (own > 0 && (nb - own) / 2 < best_diff) best_diff = (nb - own) / 2;
  for (std::size_t r = 0; r < p; ++r) {
    if (info[r].kind == PlaneKind::constant || info[r].kind == PlaneKind::noisy) continue;
    const std::uint8_t* x = in + p * nb;
    const std::uint8_t* y = in + r * nb;
    // a quick look at the first 64 bytes prunes most candidates
    const std::size_t head = nb < 64 ? nb : 64;
    // (a copy must differ in under best_diff of nb bytes: allow twice that rate in the head)
    if (count_differing(x, y, 0, head, head) * nb > 2 * best_diff * head + nb / 2) continue;
    const std::size_t d = count_differing(x, y, 0, nb, best_diff);
    if (d < best_diff) {
      best_diff = d;
      best = (p - r) * nb;
    }
  }
  return best;
}

constexpr std::size_t kMaxPlanes = 64;

/// Each plane's kind, and (when `refs` is given) the offset back to the earlier plane it
/// repeats (0: none): the encoder's plan for one block, also what plane_paths reports.
/// Returns whether lone bytes between runs are worth matching against earlier copies: in
/// blocks of raw ADC words, and in photon counts with planes of 40-80% zero bytes.
bool plan_planes(const std::uint8_t* in, std::size_t nb, std::size_t nplanes, PlaneInfo* info, std::size_t* refs) {
  classify_planes(in, nb, nplanes, info);
  // Photon counts (no plane of mostly 0xFF bytes: those are the set bits of raw pedestals):
  // a low bit plane with 40-80% zero bytes (0.03-0.1 photons per pixel) is runs of zeros
  // between single-bit bytes. Through liblz4 it took 60% of such a frame's time; as runs,
  // with each lone byte between two runs matched against its earlier copy ("x, then zeros"
  // recurs: x is one of the 8 one-bit values), it is 2.5x faster and 0.5-2% larger.
  bool photon_like = true;
  for (std::size_t p = 0; p < nplanes; ++p) {
    photon_like &= !((info[p].kind == PlaneKind::constant || info[p].kind == PlaneKind::sparse) && info[p].value == 0xFF);
  }
  bool thinned = false;
  if (photon_like) {
    for (std::size_t p = 0; p < nplanes; ++p) {
      if (info[p].kind == PlaneKind::other && info[p].zeros * 10 >= nb * 4) {
        info[p] = {PlaneKind::sparse, 0, 0, 0};
        thinned = true;
      }
    }
  }
  // Copies (and lone bytes between runs that recur) arise where photons flip several bits of
  // a pedestal's pattern together: blocks with a plane of mostly 0xFF bytes or a structured
  // one. Photon counts (planes of zeros and a few ones, already within 2% of liblz4's size)
  // have none, and looking for them would cost those blocks a third of their time.
  bool raw_like = false;
  for (std::size_t p = 0; p < nplanes; ++p) {
    raw_like |= info[p].kind == PlaneKind::other || (info[p].kind == PlaneKind::sparse && info[p].value == 0xFF);
  }
  if (refs == nullptr || nb > 65535 || !raw_like) return raw_like || thinned;
  for (std::size_t p = 1; p < nplanes; ++p) {
    if (info[p].kind != PlaneKind::sparse && info[p].kind != PlaneKind::other) continue;
    std::size_t own = 0;  // bytes of the plane equal to its dominant byte
    if (info[p].kind == PlaneKind::sparse) {
      own = nb - count_differing(in + p * nb, nullptr, info[p].value, nb, nb);
      if (nb - own < 16) continue;  // a handful of bytes besides its runs: nothing to gain
    }
    refs[p] = best_reference(in, nb, p, info, own);
  }
  return raw_like;
}

/// For positions s0 + (j << shift) > 0, j < ceil(n >> shift): the latest earlier position with
/// the same 4-byte hash (this one is then recorded) goes to cand[j], and bit (j << shift) of
/// `mask` (ceil(n / 64) words, all written) is set where its 4 bytes equal this position's.
/// No branch: in the planes that reach it a match is a coin flip. src holds 4 bytes past
/// s0 + n - 1.
void probe_matches(const std::uint8_t* src, std::size_t s0, std::size_t n, unsigned shift, std::uint16_t* table,
                   std::uint16_t* cand, std::uint64_t* mask) {
  const std::size_t stride = std::size_t{1} << shift;
  for (std::size_t w = 0; w * 64 < n; ++w) {
    std::uint64_t m = 0;  // in a register: a read-modify-write of mask[w] per probe would chain them
    const std::size_t kend = n - w * 64 < 64 ? n - w * 64 : 64;
    for (std::size_t k = 0; k < kend; k += stride) {
      const std::size_t i = s0 + w * 64 + k;
      std::uint32_t v, x;
      std::memcpy(&v, src + i, 4);
      const std::uint32_t h = (v * 2654435761U) >> (32 - MatchTable::kBits);
      const std::uint16_t c = table[h];  // 0 where none yet: position 0, compared like any other
      table[h] = static_cast<std::uint16_t>(i);
      cand[(w * 64 + k) >> shift] = c;
      std::memcpy(&x, src + c, 4);
      m |= std::uint64_t(x == v) << k;
    }
    mask[w] = m;
  }
}

/// The match finder probes every 2nd position: every position was 1.4x the time for 1.6% less
/// size on the worst frames, every 4th 25% faster and 3% larger (against the package: +0.2%,
/// +1.9%, +5.1%).
constexpr unsigned kProbeShift = 1;

constexpr std::size_t kMfLimit = 12;      // a match must start at least this far before the end
constexpr std::size_t kLastLiterals = 5;  // and end at least this far before it

/// Bytes an LZ4 length of v takes past its token nibble.
inline std::size_t ext_bytes(std::size_t v) { return v >= 15 ? 1 + (v - 15) / 255 : 0; }
/// Writes those bytes of v (>= 15) at p: the new end.
inline std::uint8_t* put_len(std::uint8_t* p, std::size_t v) {
  for (v -= 15; v >= 255; v -= 255) *p++ = 255;
  *p++ = static_cast<std::uint8_t>(v);
  return p;
}

/// Literals src[lt, m), then a match [m, e) at `off` (e - m >= 4), written at o: the new end,
/// or nullptr where [o, oe) cannot hold it. The common short one in place, 16 literal bytes
/// copied at once (the extra ones get overwritten).
inline std::uint8_t* put_sequence(std::uint8_t* o, std::uint8_t* oe, const std::uint8_t* src, std::size_t srclen,
                                  std::size_t lt, std::size_t m, std::size_t off, std::size_t e) {
  const std::size_t ll = m - lt, ml = e - m - 4;
  if (ll < 15 && ml < 15 && lt + 16 <= srclen && oe - o >= 32) {
    o[0] = static_cast<std::uint8_t>((ll << 4) | ml);
    std::memcpy(o + 1, src + lt, 16);
    o += 1 + ll;
    o[0] = static_cast<std::uint8_t>(off);
    o[1] = static_cast<std::uint8_t>(off >> 8);
    return o + 2;
  }
  if (static_cast<std::size_t>(oe - o) < 3 + ll + ext_bytes(ll) + ext_bytes(ml)) return nullptr;
  std::uint8_t* tok = o++;
  if (ll >= 15) o = put_len(o, ll);
  std::memcpy(o, src + lt, ll);
  o += ll;
  *o++ = static_cast<std::uint8_t>(off);
  *o++ = static_cast<std::uint8_t>(off >> 8);
  if (ml >= 15) o = put_len(o, ml);
  *tok = static_cast<std::uint8_t>(((ll >= 15 ? 15 : ll) << 4) | (ml >= 15 ? 15 : ml));
  return o;
}

struct Emitter {
  const std::uint8_t* in;
  std::size_t len;
  std::uint8_t* op;
  std::uint8_t* oend;
  std::size_t lit = 0;  // pending literals are in[lit, current position)
  // The latest long run of 0x00 bytes ([0]) and of 0xFF bytes ([1]): in[pos, pos + len).
  std::size_t rpos[2] = {0, 0};
  std::size_t rlen[2] = {0, 0};
  bool ok = true;
  bool lone = true;  // match lone bytes between runs against earlier copies (raw-like blocks)

  void sequence(std::size_t lit_end, std::size_t offset, std::size_t mlen) {
    std::uint8_t* o = put_sequence(op, oend, in, len, lit, lit_end, offset, lit_end + mlen);
    if (o == nullptr) {
      ok = false;
      return;
    }
    op = o;
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
    if ((c == 0 || c == 0xFF) && e - r > rlen[c & 1]) {
      rpos[c & 1] = r;
      rlen[c & 1] = e - r;
    }
  }

  // [a, b) is mostly bytes c (0x00 or 0xFF): runs of 4+ c bytes become matches, from an
  // earlier run of c at least as long when one is in reach, else with offset 1 after one
  // literal c. The runs are read off a bit mask of the bytes that are not c (one vector
  // compare per 64 bytes, then tzcnt), which every ISA computes identically: the sequences do
  // not depend on the ISA. `mask` has room for (b - a) / 64 + 1 words.
  //
  // With `ref` > 0 the runs are of bytes equal to those `ref` bytes before (an earlier plane
  // that this one mostly repeats: photon pixels flip several bits of a pixel at once, so the
  // planes of those bits are copies or near copies of each other); each run becomes a match
  // at offset `ref` (the mask: bytes that differ from those `ref` before, one vector compare
  // per 64 bytes).
  void sparse(std::size_t a, std::size_t b, std::uint64_t* mask, std::uint8_t c) {
    runs<false>(a, b, mask, c, 0);
  }
  void copy(std::size_t a, std::size_t b, std::uint64_t* mask, std::size_t ref) {
    runs<true>(a, b, mask, 0, ref);
  }

  // Both of the above: one instantiation each, so the run encoder's hot loop carries nothing of
  // the other's.
  template <bool kCopy>
  void runs(std::size_t a, std::size_t b, std::uint64_t* mask, std::uint8_t c, std::size_t ref) {
    if (a < lit) a = lit;
    if (len < kMfLimit + 5 || a >= b) return;
    const std::size_t mlimit = len - kLastLiterals, slimit = len - kMfLimit;
    const std::size_t n = b - a, nw = (n + 63) / 64;
    if constexpr (kCopy) {
      differ_mask(in + a, in + a - ref, n, mask);
    } else {
      nonzero_mask(in + a, n, mask, c);
    }
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
    std::size_t lt = lit, zp = rpos[c & 1], zl = rlen[c & 1];
    // One sequence: the literals [lt, m), then a match over [m, e) at `off` (put_sequence).
    // False when the output is full.
    auto emit = [&](std::size_t m, std::size_t off, std::size_t e) {
      std::uint8_t* end = put_sequence(o, oe, src, srclen, lt, m, off, e);
      if (end == nullptr) return ok = false;
      o = end;
      lt = e;
      return true;
    };
    // Where a single byte x last stood between two runs of c, and the length of the run after
    // it (position + 1; 0: none yet): "x, then a run" recurs (x is one of the 8 one-bit values
    // in most sparse planes), and a match from the earlier copy takes x without a literal, as
    // liblz4's hash table would find it.
    std::uint32_t lone_pos[256];  // valid where lone_seen says so (no 2 KB clear per call)
    std::uint32_t lone_run[256];
    std::uint64_t lone_seen[4] = {0, 0, 0, 0};
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
        bool handled = false;
        if constexpr (kCopy) {  // a copy of the earlier plane: every run is a match at `ref`
          const std::size_t e = j < mlimit ? j : mlimit;
          if (i <= slimit && e >= i + 4 && !emit(i, ref, e)) goto done;
          handled = true;
        } else if (lone && i == lt + 1 && i + g <= srclen) {  // one literal byte x since the last match
          const std::uint8_t x = src[lt];
          const std::size_t q = (lone_seen[x >> 6] >> (x & 63)) & 1 ? lone_pos[x] : 0;
          const std::size_t e = j < mlimit ? j : mlimit;
          if (q != 0 && lone_run[x] >= g && lt - (q - 1) <= 65535 && lt <= slimit && e >= lt + 4) {
            lone_pos[x] = static_cast<std::uint32_t>(lt + 1);
            lone_run[x] = static_cast<std::uint32_t>(g);
            lone_seen[x >> 6] |= std::uint64_t{1} << (x & 63);
            if (!emit(lt, lt - (q - 1), e)) goto done;
            if (zl < g || i - zp > 65535) {
              zp = i;
              zl = g;
            }
            handled = true;
          }
          if (!handled && (q == 0 || g >= lone_run[x] || lt - (q - 1) > 32768)) {
            lone_pos[x] = static_cast<std::uint32_t>(lt + 1);
            lone_run[x] = static_cast<std::uint32_t>(g);
            lone_seen[x >> 6] |= std::uint64_t{1} << (x & 63);
          }
        }
        if (!handled) {
          const bool far = zl < g || i - zp > 65535;
          const std::size_t m = far ? i + 1 : i;
          const std::size_t e = j < mlimit ? j : mlimit;
          if (m <= slimit && e >= m + 4 && !emit(m, far ? 1 : i - zp, e)) goto done;
          if (far) {
            zp = i;
            zl = g;
          }
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
    if constexpr (!kCopy) {
      rpos[c & 1] = zp;
      rlen[c & 1] = zl;
    }
  }

  // [a, b) by our own LZ4 match finder, in two passes. First every other position is looked
  // up in a hash table of the block's earlier positions (probe_matches: no branch, so a
  // plane's coin-flip between match and no match costs no mispredicted jump); then a greedy
  // parse walks the bit mask of positions whose 4 bytes match their candidate, extends each
  // match forward (8 bytes a compare) and one byte back (a match may start at the position
  // skipped), and emits it. The table spans the block, so regions find matches in earlier
  // ones. Against liblz4 (acceleration 2, one call per region, its 16 KB table reset each
  // time, its output re-parsed into ours) on the codec family's worst frame (flat pedestal,
  // noise 2, 10% photons): 2.5 instead of 3.8 ms a 4-module frame, 0.9% smaller.
  void lz(std::size_t a, std::size_t b, MatchTable& mt, std::uint64_t* mask) {
    if (a < lit) a = lit;
    if (len < kMfLimit + 5 || len > 65536) return;  // (positions are 16-bit)
    const std::size_t mlimit = len - kLastLiterals, slimit = len - kMfLimit;
    const std::size_t ilimit = b < slimit ? b : slimit;  // matches start before this
    if (a + 1 >= ilimit) return;
    const std::uint8_t* const src = in;
    auto rd8 = [&](std::size_t i) {
      std::uint64_t v;
      std::memcpy(&v, src + i, 8);
      return v;
    };
    const std::size_t s0 = a == 0 ? 1 : a, n = ilimit - s0, nw = (n + 63) / 64;  // (position 0 would find itself)
    std::uint16_t* const cand = mt.cand.data();
    probe_matches(src, s0, n, kProbeShift, mt.slot, cand, mask);
    // Two greedy parses at once, over the halves of the region: each match depends on where the
    // last one ended (a chain of loads ~20 cycles long), so one parse leaves the core idle;
    // two independent ones overlap. The second half's sequences go to a side buffer and follow
    // the first half's; its first sequence takes the first half's trailing literals. A match
    // of the first half ends at the midpoint (so it costs a few bytes a region).
    // (each lane's state in locals, so that it stays in registers: through memory, every
    // step's loads would wait on the last step's stores)
    const std::size_t half = nw >= 8 ? nw / 2 : nw;  // (short regions: one lane)
    const std::size_t mid = s0 + half * 64;
    if (mt.side.size() < len + len / 255 + 64) mt.side.resize(len + len / 255 + 64);
    std::uint8_t* const side = mt.side.data();
    std::size_t cur_a = 0, lt_a = lit, cur_b = half * 64, lt_b = mid;
    std::uint8_t *o_a = op, *o_b = side;
    bool live_a = true, live_b = half < nw;
    // One greedy step of a lane (mask words [cur / 64, wend), matches ending by elimit): the
    // next match written at o, or live = false when there is none.
    auto step = [&](std::size_t& cur, std::size_t& lt, std::uint8_t*& o, bool& live, std::size_t wend,
                    std::size_t elimit, std::uint8_t* oe) {
      std::size_t w = cur / 64;
      std::uint64_t x = w < wend ? mask[w] & (~std::uint64_t{0} << (cur % 64)) : 0;
      while (x == 0) {
        if (++w >= wend) {
          live = false;
          return;
        }
        x = mask[w];
      }
      const std::size_t r = w * 64 + static_cast<std::size_t>(std::countr_zero(x));
      std::size_t ip = s0 + r, c = cand[r >> kProbeShift];
      if (ip + 4 > elimit) {  // (only at the midpoint: its first 4 bytes are past it)
        live = false;
        return;
      }
      std::size_t e = ip + 4, f = c + 4;
      while (e + 8 <= elimit) {
        const std::uint64_t d = rd8(e) ^ rd8(f);
        if (d != 0) {
          e += static_cast<std::size_t>(std::countr_zero(d)) / 8;
          goto extended;
        }
        e += 8;
        f += 8;
      }
      while (e < elimit && src[e] == src[f]) {
        ++e;
        ++f;
      }
    extended:
      if (e > elimit) e = elimit;
      // one byte back (a match may start between the probed positions); no branch: the answer
      // is a coin flip (ip > 0 always; c - 1 is read as c when c is 0)
      const std::size_t back = static_cast<std::size_t>((ip > lt) & (c > 0) & (src[ip - 1] == src[c - (c > 0)]));
      ip -= back;
      std::uint8_t* end = put_sequence(o, oe, src, len, lt, ip, ip - c + back, e);
      if (end == nullptr) {
        ok = false;
        live = false;
        return;
      }
      o = end;
      lt = e;
      cur = e - s0;
    };
    const std::size_t elimit_a = mid < mlimit ? mid : mlimit;
    std::uint8_t* const side_end = side + mt.side.size();
    while (live_a || live_b) {
      if (live_a) step(cur_a, lt_a, o_a, live_a, half, elimit_a, oend);
      if (live_b) step(cur_b, lt_b, o_b, live_b, nw, mlimit, side_end);
    }
    if (!ok) return;
    op = o_a;
    lit = lt_a;
    if (o_b != side) {  // B's first match after A's literals (re-read from its sequence), then the rest
      const std::uint8_t* q = side;
      const std::uint8_t t = *q++;
      auto read_len = [&](std::size_t v) {
        if (v == 15) {
          std::uint8_t y;
          do {
            y = *q++;
            v += y;
          } while (y == 255);
        }
        return v;
      };
      const std::size_t ll = read_len(t >> 4);
      q += ll;
      const std::size_t off = std::size_t(q[0]) | (std::size_t(q[1]) << 8);
      q += 2;
      const std::size_t m = mid + ll, e = m + read_len(t & 15u) + 4;
      std::uint8_t* o = put_sequence(op, oend, src, len, lit, m, off, e);
      const auto rest = static_cast<std::size_t>(o_b - q);
      if (o == nullptr || static_cast<std::size_t>(oend - o) < rest) {
        ok = false;
        return;
      }
      std::memcpy(o, q, rest);
      op = o + rest;
      lit = lt_b;
    }
  }
};

}  // namespace

std::size_t encode_planes_lz4(const std::byte* planes, std::size_t plane_bytes, std::size_t nplanes, std::byte* out,
                              std::size_t cap, void* lz4_state, std::byte* tmp, std::size_t tmp_cap, MatchTable& matches) {
  const auto* in = reinterpret_cast<const std::uint8_t*>(planes);
  const std::size_t len = plane_bytes * nplanes;
  Emitter em{in, len, reinterpret_cast<std::uint8_t*>(out), reinterpret_cast<std::uint8_t*>(out) + cap};
  PlaneInfo info[kMaxPlanes];
  // The sparse regions' nonzero masks and the match finder's bit masks live in `tmp`
  // (LZ4_compressBound(len) >= len / 8 + 8 bytes, 8-aligned), one region at a time.
  auto* mask = reinterpret_cast<std::uint64_t*>(tmp);
  // (positions are 16-bit in the match table: blocks over 64 KiB, never bitshuffle's default,
  // take the plain path)
  const bool planned = nplanes <= kMaxPlanes && plane_bytes >= 16 && len <= 65536 && tmp_cap >= len / 8 + 8 &&
                       reinterpret_cast<std::uintptr_t>(tmp) % alignof(std::uint64_t) == 0;
  if (planned) {
    std::size_t refs[kMaxPlanes] = {};
    bool cleared = false;
    em.lone = plan_planes(in, plane_bytes, nplanes, info, refs);
    std::size_t p = 0;
    while (p < nplanes && em.ok) {
      std::size_t q = p + 1;
      if (refs[p] != 0) {
        em.copy(p * plane_bytes, q * plane_bytes, mask, refs[p]);
      } else if (info[p].kind == PlaneKind::constant) {
        while (q < nplanes && info[q].kind == PlaneKind::constant && info[q].value == info[p].value) ++q;
        em.run(p * plane_bytes, q * plane_bytes, info[p].value);
      } else if (info[p].kind == PlaneKind::sparse) {
        while (q < nplanes && refs[q] == 0 && info[q].kind == PlaneKind::sparse && info[q].value == info[p].value) ++q;
        em.sparse(p * plane_bytes, q * plane_bytes, mask, info[p].value);
      } else if (info[p].kind == PlaneKind::other) {
        while (q < nplanes && refs[q] == 0 && info[q].kind == PlaneKind::other) ++q;
        if (!cleared) {  // the table holds this block's positions only
          std::memset(matches.slot, 0, sizeof matches.slot);
          if (matches.cand.size() < len) matches.cand.resize(len);
          cleared = true;
        }
        em.lz(p * plane_bytes, q * plane_bytes, matches, mask);
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

void plane_paths(const std::byte* planes, std::size_t plane_bytes, std::size_t nplanes, std::uint64_t counts[6]) {
  if (nplanes > kMaxPlanes || plane_bytes < 16) {
    counts[5] += nplanes;  // the whole block through liblz4
    return;
  }
  const auto* in = reinterpret_cast<const std::uint8_t*>(planes);
  PlaneInfo info[kMaxPlanes];
  std::size_t refs[kMaxPlanes] = {};
  plan_planes(in, plane_bytes, nplanes, info, refs);
  for (std::size_t p = 0; p < nplanes; ++p) {
    if (refs[p] != 0) {
      ++counts[3];
    } else if (info[p].kind == PlaneKind::constant) {
      ++counts[0];
    } else if (info[p].kind == PlaneKind::sparse) {
      ++counts[info[p].value == 0 ? 1 : 2];
    } else if (info[p].kind == PlaneKind::noisy) {
      ++counts[4];
    } else {
      ++counts[5];
    }
  }
}

}  // namespace codec_detail

PlanePaths bslz4_plane_paths(std::span<const std::byte> in, std::size_t elem_size, std::size_t block_size) {
  PlanePaths out;
  if (elem_size == 0) return out;
  const std::size_t n = in.size() / elem_size;
  const std::size_t bs = block_size != 0 ? block_size : bitshuffle_default_block_size(elem_size);
  std::vector<std::byte> t(in.size());
  bitshuffle(in, t, elem_size, bs);
  std::uint64_t c[6] = {};
  for (std::size_t i = 0; i < n;) {
    const std::size_t m = n - i >= bs ? bs : (n - i) / 8 * 8;
    if (m == 0) break;
    codec_detail::plane_paths(t.data() + i * elem_size, m / 8, 8 * elem_size, c);
    i += m;
  }
  out.constant = c[0];
  out.zero_runs = c[1];
  out.ff_runs = c[2];
  out.copies = c[3];
  out.literals = c[4];
  out.lz4 = c[5];
  return out;
}

}  // namespace lclstream
