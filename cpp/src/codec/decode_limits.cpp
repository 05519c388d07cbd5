// Checks that run before a chunk's output is allocated (see decode_limits.hpp for why).
#include "lclstream/decode_limits.hpp"

#include <limits>
#include <string>

#include "codec/codec_internal.hpp"
#include "lclstream/error.hpp"

namespace lclstream {

namespace {
constexpr std::size_t kHeader = 12;  // 8-byte size + 4-byte block size (32008, 32004)
// The fewest bytes one block of a bitshuffle or LZ4 chunk takes: its 4-byte size and at
// least one byte (an empty LZ4 block decodes to nothing; a zstd frame needs more).
constexpr std::uint64_t kMinBlockBytes = 5;

std::string sz(std::uint64_t v) { return std::to_string(v); }

std::uint64_t mul_sat(std::uint64_t a, std::uint64_t b) noexcept {
  std::uint64_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? std::numeric_limits<std::uint64_t>::max() : r;
}

std::uint64_t ratio_of(Codec c) noexcept { return c == Codec::bszstd || c == Codec::zstd ? kZstdMaxRatio : kLz4MaxRatio; }

[[noreturn]] void impossible(Codec c, std::uint64_t declared, std::size_t size, const std::string& why) {
  throw CorruptDataError(std::string(codec_name(c)) + " chunk: declares " + sz(declared) + " decoded bytes, which its " +
                         sz(size) + " bytes cannot hold (" + why + ")");
}
}  // namespace

std::uint64_t max_decoded_bytes(Codec c, std::size_t compressed) noexcept {
  if (c == Codec::zstd) return mul_sat(kZstdMaxRatio, compressed);
  if (compressed < kHeader) return 0;
  return mul_sat(ratio_of(c), compressed - kHeader);
}

std::uint64_t checked_decoded_size(std::size_t elem_size, std::span<const std::uint64_t> dims, std::uint64_t limit,
                                   const char* what) {
  std::uint64_t n = elem_size;
  bool overflow = false;
  for (const std::uint64_t d : dims) {
    if (d == 0) return 0;
  }
  for (const std::uint64_t d : dims) overflow = overflow || __builtin_mul_overflow(n, d, &n);
  if (overflow || n > limit) {
    std::string shape;
    for (const std::uint64_t d : dims) shape += (shape.empty() ? "" : ", ") + sz(d);
    throw CapacityError(std::string(what) + ": shape (" + shape + ") of " + sz(elem_size) + "-byte elements is " +
                        (overflow ? std::string("more than 2^64 bytes") : sz(n) + " bytes") +
                        ", over the decode limit of " + sz(limit) + " bytes");
  }
  return n;
}

void check_message_bytes(std::uint64_t total, const DecodeLimits& limits) {
  if (total > limits.max_message_bytes) {
    throw CapacityError("decode: message declares " + sz(total) + " decoded bytes, over the limit of " +
                        sz(limits.max_message_bytes) + " bytes per message");
  }
}

void check_chunk(Codec c, std::span<const std::byte> chunk, std::size_t elem_size, std::uint64_t expected,
                 const DecodeLimits& limits) {
  const std::string name(codec_name(c));
  const std::uint64_t declared = chunk_uncompressed_size(c, chunk);  // CorruptDataError if short
  if (declared != expected) {
    throw CorruptDataError(name + " chunk: declares " + sz(declared) + " uncompressed bytes, expected " + sz(expected) +
                           " (dtype and shape)");
  }
  if (declared > limits.max_chunk_bytes) {
    throw CapacityError(name + " chunk: declares " + sz(declared) + " decoded bytes, over the limit of " +
                        sz(limits.max_chunk_bytes) + " bytes per chunk");
  }
  const std::size_t size = chunk.size();
  if (declared > max_decoded_bytes(c, size)) {
    impossible(c, declared, size, "at most " + sz(ratio_of(c)) + " decoded bytes per compressed byte");
  }
  if (c == Codec::zstd) return;
  const std::uint64_t body = size - kHeader;
  const std::uint64_t bbytes = codec_detail::get_be32(chunk.data() + 8);
  std::uint64_t nblocks = 0;
  std::uint64_t raw_tail = 0;  // bitshuffle: the last n % 8 elements, stored as they are
  if (c == Codec::lz4) {
    const std::uint64_t bs = bbytes < declared ? bbytes : declared;
    if (bs == 0 && declared != 0) throw CorruptDataError("lz4 chunk: block size 0");
    nblocks = bs == 0 ? 0 : declared / bs + (declared % bs ? 1 : 0);
  } else {
    if (elem_size == 0 || declared % elem_size != 0) {
      throw CorruptDataError(name + " chunk: " + sz(declared) + " bytes is not a whole number of " + sz(elem_size) +
                             "-byte elements");
    }
    if (bbytes == 0 || bbytes % elem_size != 0 || (bbytes / elem_size) % 8 != 0) {
      throw CorruptDataError(name + " chunk: block size " + sz(bbytes) + " bytes is not a positive multiple of 8 " +
                             sz(elem_size) + "-byte elements");
    }
    const std::uint64_t n = declared / elem_size, block = bbytes / elem_size;
    const std::uint64_t rem = n % block;
    nblocks = n / block + (rem / 8 ? 1 : 0);
    raw_tail = (rem % 8) * elem_size;
  }
  if (raw_tail > body || nblocks > (body - raw_tail) / kMinBlockBytes) {
    impossible(c, declared, size, sz(nblocks) + " blocks of at most " + sz(bbytes) + " bytes need at least " +
                                      sz(kMinBlockBytes) + " bytes each");
  }
  const std::uint64_t payload = body - raw_tail - 4 * nblocks;  // compressed block bytes
  if (declared - raw_tail > mul_sat(ratio_of(c), payload)) {
    impossible(c, declared, size, sz(payload) + " bytes of " + sz(nblocks) + " blocks decode to at most " +
                                      sz(mul_sat(ratio_of(c), payload)));
  }
}

}  // namespace lclstream
