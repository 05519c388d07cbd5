#pragma once
// Limits on what hostile chunk bytes can make a decoder allocate or produce.
//
// A chunk declares its decoded size in its header (bitshuffle/LZ4: 8 bytes big-endian; zstd:
// the frame's content size), and the message around it declares a dtype and shape. Both are
// the sender's word, so before anything is allocated the decoder checks them against
//  * a configurable limit (DecodeLimits: per chunk and per message, 1 GiB each by default),
//    exceeded -> CapacityError, and
//  * what the compressed bytes can possibly produce: an LZ4 block of c bytes decodes to at
//    most 255 c bytes (each extra byte of a match length adds 255), a zstd frame to at most
//    32768 c (an RLE block: 4 bytes for 128 KiB), and a bitshuffle chunk needs 4 bytes per
//    block it claims -> CorruptDataError.
// So a 16-byte bslz4 chunk claiming 1 TiB is refused in O(1), before any allocation.
//
// Decoder scratch (one bitshuffle block per thread) is kept between calls so the hot path
// never allocates, but never more than kMaxRetainedScratch: a larger block (a legal but
// unusual block size, or a hostile one) is decoded and its scratch released afterwards.
#include <cstddef>
#include <cstdint>
#include <span>

#include "lclstream/codec.hpp"

namespace lclstream {

/// Default for both limits: 1 GiB of decoded bytes (a Jungfrau 16M frame in float32 is 64 MiB).
inline constexpr std::uint64_t kDefaultMaxDecodedBytes = std::uint64_t{1} << 30;

/// Scratch a decoder keeps for the next call; more is released after the call that needed it.
inline constexpr std::size_t kMaxRetainedScratch = std::size_t{16} << 20;

/// Most bytes one LZ4 block of `compressed` bytes can decode to.
inline constexpr std::uint64_t kLz4MaxRatio = 255;
/// Most bytes one zstd frame of `compressed` bytes can decode to, per compressed byte.
inline constexpr std::uint64_t kZstdMaxRatio = 32768;

struct DecodeLimits {
  /// Decoded bytes one chunk may declare.
  std::uint64_t max_chunk_bytes = kDefaultMaxDecodedBytes;
  /// Decoded bytes one call (one message's frames) may produce in total.
  std::uint64_t max_message_bytes = kDefaultMaxDecodedBytes;
};

/// The most bytes `compressed` bytes of a chunk of codec `c` can decode to, by the format's
/// own limits (headers included; saturates at UINT64_MAX).
std::uint64_t max_decoded_bytes(Codec c, std::size_t compressed) noexcept;

/// elem_size x dims, or CapacityError naming `what` when it overflows or exceeds `limit`.
std::uint64_t checked_decoded_size(std::size_t elem_size, std::span<const std::uint64_t> dims, std::uint64_t limit,
                                   const char* what);

/// Everything that can be known about a chunk before allocating its output: that it declares
/// `expected` bytes (CorruptDataError otherwise), that `expected` is within
/// limits.max_chunk_bytes (CapacityError), and that its headers (size, block size, block
/// count) and length can produce that many bytes (CorruptDataError). O(1): reads only the
/// fixed header.
void check_chunk(Codec c, std::span<const std::byte> chunk, std::size_t elem_size, std::uint64_t expected,
                 const DecodeLimits& limits = {});

/// CapacityError when a message's `total` decoded bytes exceed limits.max_message_bytes.
void check_message_bytes(std::uint64_t total, const DecodeLimits& limits = {});

}  // namespace lclstream
