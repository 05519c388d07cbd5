// LZ4 block decoder for run-heavy bslz4 blocks (decoded into the codec's own scratch, which has
// slack; chunk.cpp sends it the blocks compressed 8x or more, liblz4 the rest).
//
// Why not LZ4_decompress_safe for those: such blocks are mostly long runs (constant planes are
// one offset-1 match of up to 8 KiB, zero runs in sparse planes are offset-1 or far matches),
// and liblz4 copies an offset-1 match 8 bytes per step; a Jungfrau photon frame spent half of
// its decode time there. Here an offset-1 match is one memset, longer offsets copy 32 bytes per
// step, and short literal runs are one fixed-size copy into the slack. On blocks of many short
// sequences liblz4's loop is the faster one.
//
// What it accepts is what LZ4_decompress_safe (1.9.x) accepts: every offset within what has been
// decoded (0 refused as well), a match never ending in the last 5 bytes, a sequence whose
// literals reach into the last 12 bytes of output (or the last 8 of input) must be the block's
// last and end exactly at both ends. Bytes come from the network: every length is checked
// against both ends before anything is copied, and a wild copy is taken only where the input
// has 32 more bytes and the output's slack covers the overrun.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "codec/codec_internal.hpp"

namespace lclstream::codec_detail {
namespace {

constexpr std::size_t kMfLimit = 12;      // literals reaching past oend - 12: the last sequence
constexpr std::size_t kLastLiterals = 5;  // a match ends at least this far before oend
constexpr std::size_t kInputMargin = 8;   // 2 (offset) + 1 (token) + 5 (last literals)

/// Adds the extension bytes of a 15 length; false when one would end past `ilimit` (liblz4's
/// read limit) or the sum grows past any block.
inline bool ext_len(const std::uint8_t*& ip, const std::uint8_t* ilimit, std::size_t& len) noexcept {
  std::uint8_t b = 255;
  while (b == 255) {
    if (ip >= ilimit) return false;
    b = *ip++;
    len += b;
    if (len > (std::size_t{1} << 40)) return false;
  }
  return true;
}

/// Whether fewer than `k` bytes are left (so that iend - k would point before the block).
inline bool in_limit(const std::uint8_t* iend, const std::uint8_t* ip, std::size_t k) noexcept {
  return static_cast<std::size_t>(iend - ip) < k;
}

}  // namespace

std::ptrdiff_t lz4_decode_block(const std::uint8_t* src, std::size_t n, std::uint8_t* dst, std::size_t cap) noexcept {
  const std::uint8_t* ip = src;
  const std::uint8_t* const iend = src + n;
  std::uint8_t* op = dst;
  std::uint8_t* const oend = dst + cap;
  std::uint8_t* const wend = oend + kLz4DecodeSlack;  // wild copies may write up to here
  if (n == 0) return -1;
  for (;;) {
    if (ip >= iend) return -1;  // a match must be followed by a sequence
    const unsigned token = *ip++;
    std::size_t ll = token >> 4;
    if (ll == 15 && (in_limit(iend, ip, 15) || !ext_len(ip, iend - 15, ll))) return -1;
    const auto in_left = static_cast<std::size_t>(iend - ip);
    const auto out_left = static_cast<std::size_t>(oend - op);
    if (ll > in_left || ll > out_left) return -1;
    if (ll + kMfLimit > out_left || ll + kInputMargin > in_left) {
      // the last sequence: its literals end the input and the output
      if (ll != in_left) return -1;
      std::memcpy(op, ip, ll);
      op += ll;
      return op - dst;
    }
    if (ll <= 32 && in_left >= 32 && op + 32 <= wend) {
      std::memcpy(op, ip, 32);  // fixed size: one or two vector moves; the overrun is overwritten
    } else {
      std::memcpy(op, ip, ll);
    }
    op += ll;
    ip += ll;
    const std::size_t offset = std::size_t{ip[0]} | (std::size_t{ip[1]} << 8);  // in_left - ll >= 8
    ip += 2;
    std::size_t ml = token & 15U;
    if (ml == 15 && (in_limit(iend, ip, 4) || !ext_len(ip, iend - 4, ml))) return -1;
    ml += 4;
    if (offset == 0 || offset > static_cast<std::size_t>(op - dst)) return -1;
    if (ml > static_cast<std::size_t>(oend - op) || static_cast<std::size_t>(oend - op) - ml < kLastLiterals) {
      return -1;
    }
    const std::uint8_t* m = op - offset;
    if (offset == 1) {
      std::memset(op, *m, ml);
    } else if (offset >= 32 && op + ml + 32 <= wend) {
      // each 32-byte step reads bytes written before it (offset >= 32)
      for (std::size_t k = 0; k < ml; k += 32) std::memcpy(op + k, m + k, 32);
    } else if (offset >= 16 && op + ml + 16 <= wend) {
      for (std::size_t k = 0; k < ml; k += 16) std::memcpy(op + k, m + k, 16);
    } else if (offset >= 8 && op + ml + 8 <= wend) {
      for (std::size_t k = 0; k < ml; k += 8) std::memcpy(op + k, m + k, 8);
    } else {
      for (std::size_t k = 0; k < ml; ++k) op[k] = m[k];  // overlapping: byte by byte
    }
    op += ml;
  }
}

}  // namespace lclstream::codec_detail
