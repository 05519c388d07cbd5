// zstd encoder for bit-transposed blocks (bszstd).
//
// The 32008 filter stores each bitshuffle block as zstd data that its decoder passes to
// ZSTD_decompress, which reads any sequence of concatenated frames. We write frames by hand
// (RFC 8878): single-segment frames with a 4-byte content size, holding RLE blocks for
// constant planes, raw blocks for random planes (zstd could not shrink them), and the blocks
// ZSTD_compressCCtx makes of each run of remaining planes. A frame takes at most one such run,
// so no compressed block meets entropy tables or repeat offsets its compressor did not see.
#include <zstd.h>

#include <cstdint>
#include <cstring>

#include "codec/codec_internal.hpp"

namespace lclstream::codec_detail {
namespace {

constexpr std::size_t kMaxBlock = std::size_t{128} * 1024;  // zstd's largest block
constexpr std::size_t kFrameHeader = 9;  // magic, descriptor, 4-byte content size

struct ZstdWriter {
  std::uint8_t* op;
  std::uint8_t* oend;
  bool ok = true;
  std::uint8_t* frame = nullptr;       // the open hand-written frame
  std::uint8_t* last_block = nullptr;  // its last block header
  std::size_t content = 0;             // its content size so far
  bool used_compressor = false;        // the open frame holds blocks from ZSTD_compressCCtx

  bool room(std::size_t n) {
    if (static_cast<std::size_t>(oend - op) < n) ok = false;
    return ok;
  }
  void open() {
    if (frame || !room(kFrameHeader)) return;
    frame = op;
    used_compressor = false;
    const std::uint8_t hdr[5] = {0x28, 0xB5, 0x2F, 0xFD, 0xA0};  // magic; 4-byte FCS, single segment
    std::memcpy(op, hdr, 5);
    op += kFrameHeader;
    content = 0;
    last_block = nullptr;
  }
  void block_header(unsigned type, std::size_t size) {
    if (!room(3)) return;
    const auto h = static_cast<std::uint32_t>((size << 3) | (type << 1));
    op[0] = static_cast<std::uint8_t>(h);
    op[1] = static_cast<std::uint8_t>(h >> 8);
    op[2] = static_cast<std::uint8_t>(h >> 16);
    last_block = op;
    op += 3;
  }
  void rle(std::uint8_t c, std::size_t n) {
    open();
    while (n > 0 && ok) {
      const std::size_t m = n < kMaxBlock ? n : kMaxBlock;
      block_header(1, m);
      if (!room(1)) return;
      *op++ = c;
      content += m;
      n -= m;
    }
  }
  void raw(const std::uint8_t* p, std::size_t n) {
    open();
    while (n > 0 && ok) {
      const std::size_t m = n < kMaxBlock ? n : kMaxBlock;
      block_header(0, m);
      if (!room(m)) return;
      std::memcpy(op, p, m);
      op += m;
      content += m;
      p += m;
      n -= m;
    }
  }
  void close() {
    if (!frame || !ok) return;
    last_block[0] = static_cast<std::uint8_t>(last_block[0] | 1u);
    const auto c = static_cast<std::uint32_t>(content);
    for (int i = 0; i < 4; ++i) frame[5 + i] = static_cast<std::uint8_t>(c >> (8 * i));
    frame = nullptr;
  }
  // [p, p + n) through ZSTD_compressCCtx (into tmp); its blocks join the open frame when they
  // are smaller than storing the region raw. Raw and RLE blocks leave the decoder's state
  // (repeat offsets, entropy tables) alone, so compressor blocks may follow ours; but a
  // second compressor run would assume a fresh state, so it starts a new frame.
  void compressed(ZSTD_CCtx* cctx, const std::uint8_t* p, std::size_t n, int level, std::uint8_t* tmp,
                  std::size_t tmp_cap) {
    if (!ok) return;
    const std::size_t r = ZSTD_compressCCtx(cctx, tmp, tmp_cap, p, n, level);
    if (ZSTD_isError(r) || r < 6) return raw(p, n);
    // Skip the compressor's frame header: magic, descriptor, window, dictionary id, size.
    const std::uint8_t fhd = tmp[4];
    const bool single = (fhd & 0x20) != 0;
    static constexpr std::size_t kDid[4] = {0, 1, 2, 4};
    static constexpr std::size_t kFcs[4] = {0, 2, 4, 8};
    std::size_t pos = 5 + (single ? 0 : 1) + kDid[fhd & 3] + ((fhd >> 6) == 0 ? (single ? 1 : 0) : kFcs[fhd >> 6]);
    const std::size_t first = pos;
    std::size_t last = pos;
    for (bool end = false; !end;) {  // walk the blocks to the last one
      if (pos + 3 > r) return raw(p, n);
      const std::uint32_t h = std::uint32_t(tmp[pos]) | (std::uint32_t(tmp[pos + 1]) << 8) | (std::uint32_t(tmp[pos + 2]) << 16);
      end = (h & 1u) != 0;
      const unsigned type = (h >> 1) & 3u;
      last = pos;
      pos += 3 + (type == 1 ? 1 : (h >> 3));
    }
    const std::size_t blocks = pos - first;
    if (pos > r || blocks + (frame && !used_compressor ? 0 : kFrameHeader) >= n + 3 * (n / kMaxBlock + 1)) {
      return raw(p, n);
    }
    if (used_compressor) close();
    open();
    if (!room(blocks)) return;
    std::memcpy(op, tmp + first, blocks);
    last_block = op + (last - first);
    last_block[0] = static_cast<std::uint8_t>(last_block[0] & ~1u);
    op += blocks;
    content += n;
    used_compressor = true;
  }
};

}  // namespace

std::size_t encode_planes_zstd(const std::byte* planes, std::size_t plane_bytes, std::size_t nplanes, std::byte* out,
                               std::size_t cap, void* cctx, int level, std::byte* tmp, std::size_t tmp_cap) {
  constexpr std::size_t kMaxPlanes = 64;
  if (nplanes > kMaxPlanes || plane_bytes < 16) return 0;
  const auto* in = reinterpret_cast<const std::uint8_t*>(planes);
  PlaneInfo info[kMaxPlanes];
  classify_planes(in, plane_bytes, nplanes, info);
  // Random bits (flip rate near 1/2, so P(1) near 1/2) leave nothing for zstd's entropy coder.
  auto random = [&](std::size_t p) {
    return info[p].kind == PlaneKind::noisy && std::size_t{info[p].flips} * 100 >= plane_bytes * 8 * 45;
  };
  ZstdWriter w{reinterpret_cast<std::uint8_t*>(out), reinterpret_cast<std::uint8_t*>(out) + cap};
  std::size_t p = 0;
  while (p < nplanes && w.ok) {
    std::size_t q = p + 1;
    if (info[p].kind == PlaneKind::constant) {
      while (q < nplanes && info[q].kind == PlaneKind::constant && info[q].value == info[p].value) ++q;
      w.rle(info[p].value, (q - p) * plane_bytes);
    } else if (random(p)) {
      while (q < nplanes && random(q)) ++q;
      w.raw(in + p * plane_bytes, (q - p) * plane_bytes);
    } else {
      while (q < nplanes && info[q].kind != PlaneKind::constant && !random(q)) ++q;
      w.compressed(static_cast<ZSTD_CCtx*>(cctx), in + p * plane_bytes, (q - p) * plane_bytes, level,
                   reinterpret_cast<std::uint8_t*>(tmp), tmp_cap);
    }
    p = q;
  }
  w.close();
  if (!w.ok) return 0;
  return static_cast<std::size_t>(w.op - reinterpret_cast<std::uint8_t*>(out));
}

}  // namespace lclstream::codec_detail
