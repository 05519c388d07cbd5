#pragma once
// Internal interface between the portable chunk code and the per-ISA kernels. Each ISA's
// kernels live in their own namespace and are reached only through bitshuffle.cpp's dispatch.
#include <cstddef>
#include <cstdint>
#include <vector>
#include <cstring>

namespace lclstream {

namespace codec_detail {
enum class PlaneKind : std::uint8_t { constant, noisy, sparse, other };
struct PlaneInfo {
  PlaneKind kind;
  std::uint8_t value;   // the byte of a constant plane, the dominant byte (0 or 0xFF) of a sparse one
  std::uint32_t flips;  // neighbouring bits that differ (about 4 per byte for random bits);
                        // 0 for constant and sparse planes, which do not need it
  std::uint32_t zeros;  // zero bytes of an `other` plane (0 for the other kinds)
};
}  // namespace codec_detail

namespace scalar {
void differ_mask(const std::uint8_t* x, const std::uint8_t* y, std::size_t n, std::uint64_t* out);
std::size_t count_differing(const std::uint8_t* x, const std::uint8_t* y, std::uint8_t c, std::size_t n,
                            std::size_t limit);
void classify_planes(const std::uint8_t* planes, std::size_t nb, std::size_t nplanes, codec_detail::PlaneInfo* info);
void nonzero_mask(const std::uint8_t* x, std::size_t n, std::uint64_t* out, std::uint8_t c);
void bit_transpose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size);
void bit_untranspose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size);
}  // namespace scalar
namespace avx2 {
void differ_mask(const std::uint8_t* x, const std::uint8_t* y, std::size_t n, std::uint64_t* out);
std::size_t count_differing(const std::uint8_t* x, const std::uint8_t* y, std::uint8_t c, std::size_t n,
                            std::size_t limit);
void classify_planes(const std::uint8_t* planes, std::size_t nb, std::size_t nplanes, codec_detail::PlaneInfo* info);
void nonzero_mask(const std::uint8_t* x, std::size_t n, std::uint64_t* out, std::uint8_t c);
void bit_transpose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size);
void bit_untranspose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size);
}  // namespace avx2
namespace avx512 {
void differ_mask(const std::uint8_t* x, const std::uint8_t* y, std::size_t n, std::uint64_t* out);
std::size_t count_differing(const std::uint8_t* x, const std::uint8_t* y, std::uint8_t c, std::size_t n,
                            std::size_t limit);
/// bit_untranspose with streaming stores, for outputs too large to stay in cache (a decoded
/// batch): false (nothing written) unless elem_size is 2, n a multiple of 128 and `out`
/// 64-byte aligned. stream_fence() orders them before the output is handed on.
bool bit_untranspose_stream(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size);
void stream_fence();
void classify_planes(const std::uint8_t* planes, std::size_t nb, std::size_t nplanes, codec_detail::PlaneInfo* info);
void nonzero_mask(const std::uint8_t* x, std::size_t n, std::uint64_t* out, std::uint8_t c);
void bit_transpose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size);
void bit_untranspose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size);
}  // namespace avx512

namespace codec_detail {

inline void put_be32(std::byte* p, std::uint32_t v) noexcept {
  p[0] = std::byte(v >> 24);
  p[1] = std::byte(v >> 16);
  p[2] = std::byte(v >> 8);
  p[3] = std::byte(v);
}
inline void put_be64(std::byte* p, std::uint64_t v) noexcept {
  put_be32(p, static_cast<std::uint32_t>(v >> 32));
  put_be32(p + 4, static_cast<std::uint32_t>(v));
}
inline std::uint32_t get_be32(const std::byte* p) noexcept {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}
inline std::uint64_t get_be64(const std::byte* p) noexcept {
  return (std::uint64_t(get_be32(p)) << 32) | get_be32(p + 4);
}

/// Classifies each bit plane (dispatching on the active ISA; every ISA gives the same answer).
void classify_planes(const std::uint8_t* planes, std::size_t nb, std::size_t nplanes, PlaneInfo* info);

/// Writes ceil(n / 64) words: bit k of word w is set iff x[64 w + k] != c (bits past n are 0).
/// Dispatches on the active ISA; every ISA writes the same words.
void nonzero_mask(const std::uint8_t* x, std::size_t n, std::uint64_t* out, std::uint8_t c);
/// Bit k of out[w] set iff x[64 w + k] != y[64 w + k]: nonzero_mask of x ^ y without writing it.
void differ_mask(const std::uint8_t* x, const std::uint8_t* y, std::size_t n, std::uint64_t* out);
/// Bytes where x differs from y (y == nullptr: from the byte c), counted 64 bytes at a time and
/// returned as soon as the count passes `limit` (so the same value on every ISA).
std::size_t count_differing(const std::uint8_t* x, const std::uint8_t* y, std::uint8_t c, std::size_t n,
                            std::size_t limit);

/// Block positions by the hash of the 4 bytes there, for the plane encoder's own match finder
/// (planes_lz4.cpp). Cleared at each block that uses it (8 KiB, in L1: ~0.1 us), so no chunk
/// depends on the one before, and every entry points into the block being encoded.
struct MatchTable {
  static constexpr int kBits = 12;
  std::uint16_t slot[std::size_t{1} << kBits] = {};
  std::vector<std::uint16_t> cand;  // per probed position of a region: the earlier position
  std::vector<std::uint8_t> side;   // the second half of a region's sequences, before joining
};

/// Encodes one bit-transposed block (8*elem_size planes of `plane_bytes` each) as one valid
/// LZ4 block: constant planes become offset-1 matches, noisy planes literals, the rest goes
/// through the encoder's own match finder (`matches`). `lz4_state` is an LZ4_stream_t-sized
/// scratch for blocks it does not plan (tiny, or over 64 KiB), `tmp` holds
/// LZ4_compressBound(block bytes). Returns the LZ4 block's size, or 0 if `cap` is too small.
std::size_t encode_planes_lz4(const std::byte* planes, std::size_t plane_bytes, std::size_t nplanes,
                              std::byte* out, std::size_t cap, void* lz4_state, std::byte* tmp,
                              std::size_t tmp_cap, MatchTable& matches);

/// How encode_planes_lz4 would encode each plane of one block, added to `counts`: constant,
/// runs of 0x00, runs of 0xFF, copy of an earlier plane, literals (noisy), LZ4 matches.
void plane_paths(const std::byte* planes, std::size_t plane_bytes, std::size_t nplanes, std::uint64_t counts[6]);

/// Same for zstd: one zstd frame per bitshuffle block, or several concatenated frames (every
/// zstd decoder reads them as one): constant planes as RLE blocks, random planes as raw
/// blocks, the rest through `cctx` at `level`. Returns the size, or 0 if `cap` is too small.
std::size_t encode_planes_zstd(const std::byte* planes, std::size_t plane_bytes, std::size_t nplanes, std::byte* out,
                               std::size_t cap, void* cctx, int level, std::byte* tmp, std::size_t tmp_cap);

/// Bytes past `cap` that lz4_decode_block may write (and later bytes overwrite).
inline constexpr std::size_t kLz4DecodeSlack = 64;

/// Decodes one LZ4 block of `n` bytes into `dst` (`cap` bytes plus kLz4DecodeSlack writable):
/// the decoded size, or -1 for a block that LZ4_decompress_safe would refuse (or one with an
/// offset of 0). Accepts exactly what that accepts (lz4_decode.cpp); faster on runs.
std::ptrdiff_t lz4_decode_block(const std::uint8_t* src, std::size_t n, std::uint8_t* dst, std::size_t cap) noexcept;

}  // namespace codec_detail
}  // namespace lclstream
