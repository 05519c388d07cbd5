#pragma once
// Lossless chunk codecs in the byte layouts of the HDF5 filters that consumers already have
// (hdf5plugin, the bitshuffle package, DECTRIS' bslz4 decoders), so that a chunk we write is
// stored with a direct chunk write and read back by anyone without our code:
//   bslz4  / bszstd : bitshuffle + LZ4 / zstd, HDF5 filter 32008 (cpp/src/codec/FORMAT.md)
//   lz4             : HDF5 filter 32004 framing (hdf5plugin's LZ4)
//   zstd            : HDF5 filter 32015 (one plain zstd frame)
// A Compressor owns its scratch memory, so compressing many blocks never allocates.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "lclstream/batch.hpp"
#include "lclstream/buffer_pool.hpp"

namespace lclstream {

enum class Codec : std::uint8_t { bslz4, bszstd, lz4, zstd };

/// What the rest of the system must know about one codec's chunks: the single table from which
/// the Python layer (through `_core.codecs()`), the message formats and the HDF5 readers and
/// writers take codec names, filter ids and options, so no fact is restated elsewhere.
struct CodecInfo {
  Codec codec;
  /// Our name, as configs and message headers spell it.
  std::string_view name;
  /// The HDF5 filter that decodes the chunks (ids registered with The HDF Group).
  unsigned hdf5_filter_id;
  /// The filter's first user option (cd_values[0]) is a block size, written 0 ("the filter's
  /// default": bitshuffle's per element size, LZ4's 1 GiB).
  bool hdf5_block_size_option;
  /// For a filter that hosts several compressors (bitshuffle), the compressor's id in the
  /// user options after the block size (BSHUF_H5_COMPRESS_LZ4 = 2, _ZSTD = 3); 0: none.
  unsigned hdf5_compressor;
  /// Index of hdf5_compressor in the cd_values HDF5 stores once the filter's set_local has
  /// run (bitshuffle: major, minor, elem_size, block_size, compressor, level -> 4); -1: none.
  /// Readers recognise our codecs from a dataset's filter by (hdf5_filter_id, this value).
  int hdf5_compressor_slot;
  /// Bit-transposed in blocks of elements (bitshuffle): the element size belongs to the
  /// chunk, HDF5's set_local takes it from the dtype and stream2 carries it as the modifier.
  bool bitshuffled;
  /// The chunk starts with its uncompressed size, 8 bytes big-endian (then a 4-byte block
  /// size), so a reader can check it before decoding; a zstd frame declares it itself.
  bool size_header;
  /// Compression level when 0 is given; 0 = the codec takes no level. A leveled codec's
  /// level is its last HDF5 user option.
  int default_level;
  /// DECTRIS stream2's algorithm name in CBOR tag 56500, "" where stream2 defines none.
  std::string_view stream2_name;
};

/// The codec table, indexed by the Codec value.
inline constexpr std::array<CodecInfo, 4> kCodecTable{{
    {Codec::bslz4, "bslz4", 32008, true, 2, 4, true, true, 0, "bslz4"},
    {Codec::bszstd, "bszstd", 32008, true, 3, 4, true, true, 3, ""},
    {Codec::lz4, "lz4", 32004, true, 0, -1, false, true, 0, "lz4"},
    {Codec::zstd, "zstd", 32015, false, 0, -1, false, false, 3, ""},
}};

/// The table's row of a codec.
constexpr const CodecInfo& codec_info(Codec c) noexcept { return kCodecTable[static_cast<std::size_t>(c)]; }

/// "bslz4", "bszstd", "lz4", "zstd".
std::string_view codec_name(Codec c) noexcept;
/// Parses one of our codec names (configs' aliases are the Python layer's); throws ValueError.
Codec codec_from_name(std::string_view name);

/// The HDF5 filter id a codec's chunks are read by (32008, 32004 or 32015).
unsigned hdf5_filter_id(Codec c) noexcept;
/// The filter options (cd_values) to give h5py's create_dataset for a codec, as
/// hdf5plugin writes them (bitshuffle: block size 0 = default, 2 = LZ4 / 3 = zstd, level).
std::vector<unsigned> hdf5_filter_options(Codec c, int level);

struct CodecOptions {
  Codec codec = Codec::bslz4;
  /// Compression level for zstd codecs (0 = the library's default, 3); ignored for LZ4.
  int level = 0;
  /// Bitshuffle block size in elements (0 = bitshuffle's default for the element size;
  /// a multiple of 8 otherwise). For lz4, the block size in bytes (0 = 1 GiB as hdf5plugin).
  std::size_t block_size = 0;
};

/// bitshuffle's default block size in elements for an element size (bshuf_default_block_size:
/// 8192 bytes worth of elements, rounded down to a multiple of 8, at least 128).
std::size_t bitshuffle_default_block_size(std::size_t elem_size) noexcept;

/// Bit-transposes `n` elements (n a multiple of 8) of `elem_size` bytes: output bit plane
/// p = byte*8 + bit holds that bit of every element, element j at byte j/8, bit j%8.
/// Exactly bitshuffle's bshuf_trans_bit_elem. `out` must not overlap `in`.
void bit_transpose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size);
/// Inverse of bit_transpose.
void bit_untranspose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size);

/// bshuf_bitshuffle over a whole buffer: blocks of `block_size` elements (0 = default), the
/// remainder rounded down to 8 elements, the last n % 8 elements copied.
void bitshuffle(std::span<const std::byte> in, std::span<std::byte> out, std::size_t elem_size,
                std::size_t block_size = 0);
void bitunshuffle(std::span<const std::byte> in, std::span<std::byte> out, std::size_t elem_size,
                  std::size_t block_size = 0);

/// How the bslz4 encoder encodes the bit planes of `in` (blocks as bitshuffle cuts them), in
/// planes: constant (one match), runs of 0x00 or of 0xFF bytes (matches between the other
/// bytes), copies of an earlier plane of the block (matches back to it), literals (noise no
/// LZ4 could shrink), and LZ4 matches found by hashing (the rest, field `lz4`). For
/// benchmarks and tuning: what the data made the encoder do.
struct PlanePaths {
  std::uint64_t constant = 0, zero_runs = 0, ff_runs = 0, copies = 0, literals = 0, lz4 = 0;
};
PlanePaths bslz4_plane_paths(std::span<const std::byte> in, std::size_t elem_size, std::size_t block_size = 0);

/// Largest chunk `compress` can produce for `nbytes` of input.
std::size_t compress_bound(const CodecOptions& opt, std::size_t nbytes, std::size_t elem_size);

/// Reads the uncompressed size a chunk declares (CorruptDataError if the header is short).
std::uint64_t chunk_uncompressed_size(Codec c, std::span<const std::byte> chunk);

/// Compresses and decompresses chunks; owns per-thread scratch (LZ4 state, zstd contexts,
/// a transposed block), so it is cheap to call per event. Not thread-safe: one per thread.
class Compressor {
 public:
  Compressor();
  ~Compressor();
  Compressor(Compressor&&) noexcept;
  Compressor& operator=(Compressor&&) noexcept;

  /// Compresses `in` (elements of `elem_size` bytes) into `out`, which must hold
  /// compress_bound() bytes (CapacityError otherwise). Returns the chunk's size. With
  /// threads != 1 the blocks of the chunk are shared among threads (0 = all cores).
  std::size_t compress(std::span<const std::byte> in, std::size_t elem_size, std::span<std::byte> out,
                       const CodecOptions& opt, int threads = 1);
  /// Decompresses a chunk into `out`, whose size must equal the size the chunk declares
  /// (CorruptDataError otherwise, before anything is written).
  void decompress(std::span<const std::byte> chunk, std::size_t elem_size, std::span<std::byte> out,
                  Codec codec, int threads = 1);

 private:
  std::unique_ptr<struct CompressorState> s_;
};

/// One-off helpers using a per-thread Compressor.
std::size_t compress_chunk(std::span<const std::byte> in, std::size_t elem_size, std::span<std::byte> out,
                           const CodecOptions& opt, int threads = 1);
void decompress_chunk(std::span<const std::byte> chunk, std::size_t elem_size, std::span<std::byte> out,
                      Codec codec, int threads = 1);

/// Per-event chunks of a batch, packed back to back in one pooled buffer.
struct CompressedFrames {
  PooledBuffer buffer;                 // chunks, back to back, from offsets[0] = 0
  std::vector<std::size_t> offsets;    // start of each event's chunk
  std::vector<std::size_t> sizes;      // size of each event's chunk
  std::size_t total_bytes() const noexcept { return offsets.empty() ? 0 : offsets.back() + sizes.back(); }
};

/// Bytes a buffer must hold for compress_frames of `frames` frames of `frame_bytes` each.
std::size_t compress_frames_bound(const CodecOptions& opt, std::size_t frames, std::size_t frame_bytes,
                                  std::size_t elem_size);
/// Compresses `frames` equally sized frames stored contiguously in `in` into `out` (at least
/// compress_frames_bound bytes), one chunk per frame, packed back to back; threads take
/// whole frames (0 = all cores). Fills offsets and sizes (resized to `frames`); returns the total.
std::size_t compress_frames(std::span<const std::byte> in, std::size_t frames, std::size_t elem_size,
                            std::span<std::byte> out, const CodecOptions& opt, int threads,
                            std::vector<std::size_t>& offsets, std::vector<std::size_t>& sizes);
/// Same, into a buffer taken from `pool` (whose buffers must hold compress_frames_bound).
CompressedFrames compress_frames(std::span<const std::byte> in, std::size_t frames, std::size_t elem_size,
                                 BufferPool& pool, const CodecOptions& opt, int threads = 0);
/// The events of a batch, one chunk each, into a buffer from `pool` (elements of the batch's dtype).
CompressedFrames compress_batch(const Batch& batch, BufferPool& pool, const CodecOptions& opt, int threads = 0);
/// Decompresses one chunk per frame into contiguous `out` (frames * frame bytes), in parallel.
void decompress_frames(std::span<const std::byte> chunks, std::span<const std::size_t> offsets,
                       std::span<const std::size_t> sizes, std::size_t elem_size, std::span<std::byte> out,
                       Codec codec, int threads = 0);

}  // namespace lclstream
