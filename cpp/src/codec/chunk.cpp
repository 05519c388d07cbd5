// Chunk framing of the HDF5 filters 32008 (bitshuffle), 32004 (LZ4) and 32015 (zstd), the
// per-thread Compressor, and the batch helpers. Byte layouts: FORMAT.md next to this file.
#include <lz4.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "codec/codec_internal.hpp"
#include "lclstream/codec.hpp"
#include "lclstream/decode_limits.hpp"
#include "lclstream/error.hpp"
#include "lclstream/isa.hpp"
#include "lclstream/parallel.hpp"

namespace lclstream {

using namespace codec_detail;

namespace {
constexpr std::size_t kHeader = 12;          // 8-byte size + 4-byte block size
constexpr std::size_t kStreamOutBytes = std::size_t{1} << 20;  // decoded outputs this large bypass the cache
constexpr std::size_t kLz4DefaultBlock = std::size_t{1} << 30;  // hdf5plugin's LZ4 default
constexpr int kZstdDefaultLevel = codec_info(Codec::zstd).default_level;

std::string sz(std::size_t v) { return std::to_string(v); }

struct AlignedFree {
  void operator()(void* p) const noexcept { std::free(p); }
};
}  // namespace

// Names and HDF5 filter parameters: registry.cpp, from kCodecTable.

// ---- geometry of a bitshuffle chunk ---------------------------------------------------

namespace {
struct BsGeometry {
  std::size_t elem_size = 0;
  std::size_t n = 0;           // elements
  std::size_t block = 0;       // elements per full block
  std::size_t full_blocks = 0;
  std::size_t last = 0;        // elements in the shorter block (multiple of 8, may be 0)
  std::size_t leftover = 0;    // elements stored raw at the end (n % 8)
  std::size_t blocks() const noexcept { return full_blocks + (last ? 1 : 0); }
  std::size_t block_elems(std::size_t i) const noexcept { return i < full_blocks ? block : last; }
};

BsGeometry bs_geometry(std::size_t nbytes, std::size_t elem_size, std::size_t block) {
  if (elem_size == 0) throw ValueError("codec: element size must be positive");
  if (nbytes % elem_size != 0) {
    throw ValueError("codec: " + sz(nbytes) + " bytes is not a whole number of " + sz(elem_size) + "-byte elements");
  }
  BsGeometry g;
  g.elem_size = elem_size;
  g.n = nbytes / elem_size;
  g.block = block ? block : bitshuffle_default_block_size(elem_size);
  if (g.block % 8 != 0) throw ValueError("codec: bitshuffle block size must be a multiple of 8 elements");
  g.full_blocks = g.n / g.block;
  const std::size_t rem = g.n % g.block;
  g.last = rem - rem % 8;
  g.leftover = rem % 8;
  return g;
}

std::size_t block_bound(Codec c, std::size_t bytes) {
  return c == Codec::bszstd ? ZSTD_compressBound(bytes) : static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(bytes)));
}
}  // namespace

std::size_t compress_bound(const CodecOptions& opt, std::size_t nbytes, std::size_t elem_size) {
  switch (opt.codec) {
    case Codec::bslz4:
    case Codec::bszstd: {
      const BsGeometry g = bs_geometry(nbytes, elem_size, opt.block_size);
      std::size_t b = kHeader + g.leftover * elem_size;
      if (g.full_blocks) b += g.full_blocks * (4 + block_bound(opt.codec, g.block * elem_size));
      if (g.last) b += 4 + block_bound(opt.codec, g.last * elem_size);
      return b;
    }
    case Codec::lz4: {
      const std::size_t bs = opt.block_size ? opt.block_size : kLz4DefaultBlock;
      const std::size_t nblocks = nbytes == 0 ? 0 : (nbytes + bs - 1) / bs;
      return kHeader + nblocks * 4 + nbytes;  // a block that does not shrink is stored raw
    }
    case Codec::zstd: return ZSTD_compressBound(nbytes);
  }
  return 0;
}

std::uint64_t chunk_uncompressed_size(Codec c, std::span<const std::byte> chunk) {
  if (c == Codec::zstd) {
    const unsigned long long s = ZSTD_getFrameContentSize(chunk.data(), chunk.size());
    if (s == ZSTD_CONTENTSIZE_ERROR) throw CorruptDataError("zstd chunk: not a zstd frame (" + sz(chunk.size()) + " bytes)");
    if (s == ZSTD_CONTENTSIZE_UNKNOWN) throw CorruptDataError("zstd chunk: the frame does not declare its size");
    return s;
  }
  if (chunk.size() < kHeader) {
    throw CorruptDataError(std::string(codec_name(c)) + " chunk: " + sz(chunk.size()) +
                           " bytes is shorter than the 12-byte header");
  }
  return get_be64(chunk.data());
}

// ---- Compressor ------------------------------------------------------------------------

struct CompressorState {
  std::unique_ptr<void, AlignedFree> lz4;  // LZ4_stream_t
  ZSTD_CCtx* cctx = nullptr;
  ZSTD_DCtx* dctx = nullptr;
  std::vector<std::byte> block;  // one transposed / decoded block
  std::vector<std::byte> tmp;    // the plane encoder's bit masks
  codec_detail::MatchTable matches{};  // the plane encoder's match finder

  CompressorState() : lz4(std::aligned_alloc(64, (static_cast<std::size_t>(LZ4_sizeofState()) + 63) / 64 * 64)) {
    if (!lz4) throw CapacityError("Compressor: cannot allocate LZ4 state");
    LZ4_initStream(lz4.get(), static_cast<std::size_t>(LZ4_sizeofState()));
  }
  ~CompressorState() {
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
  }
  CompressorState(const CompressorState&) = delete;
  CompressorState& operator=(const CompressorState&) = delete;

  ZSTD_CCtx* zc() {
    if (!cctx && !(cctx = ZSTD_createCCtx())) throw CapacityError("Compressor: cannot create zstd context");
    return cctx;
  }
  ZSTD_DCtx* zd() {
    if (!dctx && !(dctx = ZSTD_createDCtx())) throw CapacityError("Compressor: cannot create zstd context");
    return dctx;
  }
  std::byte* block_buf(std::size_t bytes) {
    if (block.size() < bytes) block.resize(bytes);
    return block.data();
  }
  std::byte* tmp_buf(std::size_t bytes) {
    if (tmp.size() < bytes) tmp.resize(bytes);
    return tmp.data();
  }
  /// Releases scratch beyond kMaxRetainedScratch (an unusually large or hostile block size),
  /// so one such call does not pin its scratch in a thread-local state for good.
  void trim() noexcept {
    if (block.capacity() > kMaxRetainedScratch) std::vector<std::byte>().swap(block);
    if (tmp.capacity() > kMaxRetainedScratch) std::vector<std::byte>().swap(tmp);
  }
  std::size_t scratch_bytes() const noexcept { return block.capacity() + tmp.capacity(); }

  // One bitshuffle block: transpose, then LZ4 or zstd into dst (capacity cap). Returns size.
  std::size_t bs_block(const std::byte* src, std::size_t elems, std::size_t elem_size, std::byte* dst,
                       std::size_t cap, Codec c, int level) {
    const std::size_t bytes = elems * elem_size;
    std::byte* t = block_buf(bytes);
    bit_transpose(src, t, elems, elem_size);
    if (c == Codec::bszstd) {
      const int lvl = level != 0 ? level : kZstdDefaultLevel;
      const std::size_t tcap = ZSTD_compressBound(bytes);
      const std::size_t e = encode_planes_zstd(t, elems / 8, 8 * elem_size, dst, cap, zc(), lvl, tmp_buf(tcap), tcap);
      if (e > 0) return e;
      const std::size_t r = ZSTD_compressCCtx(zc(), dst, cap, t, bytes, lvl);  // tiny or unusual blocks
      if (ZSTD_isError(r)) throw ValueError(std::string("zstd compression failed: ") + ZSTD_getErrorName(r));
      return r;
    }
    const std::size_t tcap = static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(bytes)));
    const std::size_t r = encode_planes_lz4(t, elems / 8, 8 * elem_size, dst, cap, lz4.get(), tmp_buf(tcap), tcap, matches);
    if (r == 0) throw CapacityError("bslz4: block does not fit its bound");
    return r;
  }

  // One bitshuffle block back: decode into scratch, untranspose into dst.
  void bs_unblock(const std::byte* src, std::size_t csize, std::size_t elems, std::size_t elem_size,
                  std::byte* dst, Codec c, std::size_t index, bool stream = false) {
    const std::size_t bytes = elems * elem_size;
    // Before the scratch is sized for the block: can these bytes produce it at all?
    const std::uint64_t ratio = c == Codec::bszstd ? kZstdMaxRatio : kLz4MaxRatio;
    if (bytes / ratio > csize || (bytes > 0 && csize == 0)) {
      throw CorruptDataError(std::string(codec_name(c)) + " chunk: block " + sz(index) + " of " + sz(csize) +
                             " compressed bytes cannot decode to " + sz(bytes) + " bytes");
    }
    // kLz4DecodeSlack bytes past the block: lz4_decode_block's wild copies land there
    std::byte* t = block_buf(bytes + codec_detail::kLz4DecodeSlack);
    if (c == Codec::bszstd) {
      const std::size_t r = ZSTD_decompressDCtx(zd(), t, bytes, src, csize);
      if (ZSTD_isError(r) || r != bytes) {
        throw CorruptDataError("bszstd chunk: block " + sz(index) + " (" + sz(csize) + " compressed bytes) does not decode to " +
                               sz(bytes) + " bytes" + (ZSTD_isError(r) ? std::string(": ") + ZSTD_getErrorName(r) : std::string()));
      }
    } else {
      // Blocks compressed 8x or more are mostly runs (constant planes, the zero runs of photon
      // counts): lz4_decode_block writes those with memset and wide copies, 1.7x liblz4's speed
      // on Jungfrau photon frames. Denser blocks (raw ADC words) go to liblz4, whose loop over
      // short sequences is 1.3x faster than ours. Both accept exactly the same blocks at the
      // block's size (test_lz4_decode), so the choice changes the speed, never the result.
      const std::ptrdiff_t r =
          csize * 8 <= bytes
              ? codec_detail::lz4_decode_block(reinterpret_cast<const std::uint8_t*>(src), csize,
                                               reinterpret_cast<std::uint8_t*>(t), bytes)
              : LZ4_decompress_safe(reinterpret_cast<const char*>(src), reinterpret_cast<char*>(t),
                                    static_cast<int>(csize), static_cast<int>(bytes));
      if (r < 0 || static_cast<std::size_t>(r) != bytes) {
        throw CorruptDataError("bslz4 chunk: block " + sz(index) + " (" + sz(csize) + " compressed bytes) does not decode to " +
                               sz(bytes) + " bytes");
      }
    }
    if (!(stream && avx512::bit_untranspose_stream(t, dst, elems, elem_size))) bit_untranspose(t, dst, elems, elem_size);
  }
};

namespace {
Compressor& thread_compressor() {
  thread_local Compressor c;
  return c;
}

void check_out(std::span<std::byte> out, std::size_t need, const char* what) {
  if (out.size() < need) {
    throw CapacityError(std::string(what) + ": output holds " + sz(out.size()) + " bytes, needs up to " + sz(need));
  }
}

// Splits [0, n) blocks into `parts` contiguous groups.
std::size_t group_begin(std::size_t n, std::size_t parts, std::size_t k) { return n * k / parts; }
}  // namespace

Compressor::Compressor() : s_(std::make_unique<CompressorState>()) {}
Compressor::~Compressor() = default;
Compressor::Compressor(Compressor&&) noexcept = default;
Compressor& Compressor::operator=(Compressor&&) noexcept = default;

std::size_t Compressor::compress(std::span<const std::byte> in, std::size_t elem_size, std::span<std::byte> out,
                                 const CodecOptions& opt, int threads) {
  const std::size_t bound = compress_bound(opt, in.size(), elem_size);
  check_out(out, bound, "compress");
  const std::size_t nbytes = in.size();
  switch (opt.codec) {
    case Codec::bslz4:
    case Codec::bszstd: {
      const BsGeometry g = bs_geometry(nbytes, elem_size, opt.block_size);
      if (g.block * elem_size > 0xFFFFFFFFu) throw ValueError("codec: block size too large");
      put_be64(out.data(), nbytes);
      put_be32(out.data() + 8, static_cast<std::uint32_t>(g.block * elem_size));
      const std::size_t nblocks = g.blocks();
      const std::size_t full_cap = 4 + block_bound(opt.codec, g.block * elem_size);
      const std::size_t last_cap = g.last ? 4 + block_bound(opt.codec, g.last * elem_size) : 0;
      auto slot_of = [&](std::size_t i) { return i < g.full_blocks ? i * full_cap : g.full_blocks * full_cap; };
      auto cap_of = [&](std::size_t i) { return i < g.full_blocks ? full_cap : last_cap; };
      // Each group of blocks is written from the start of its worst-case slot, then the
      // groups are moved down in order so the chunk is contiguous.
      const std::size_t parts = nblocks == 0 ? 1 : resolve_threads(threads, nblocks);
      std::vector<std::size_t> group_bytes(parts, 0);
      auto run_group = [&](CompressorState& st, std::size_t k) {
        struct Trim {
          CompressorState& s;
          ~Trim() { s.trim(); }
        } trim{st};
        const std::size_t b0 = group_begin(nblocks, parts, k), b1 = group_begin(nblocks, parts, k + 1);
        std::byte* dst = out.data() + kHeader + slot_of(b0);
        std::size_t used = 0;
        for (std::size_t i = b0; i < b1; ++i) {
          const std::size_t elems = g.block_elems(i);
          const std::byte* src = in.data() + i * g.block * elem_size;
          const std::size_t c = st.bs_block(src, elems, elem_size, dst + used + 4, cap_of(i) - 4, opt.codec, opt.level);
          put_be32(dst + used, static_cast<std::uint32_t>(c));
          used += 4 + c;
        }
        group_bytes[k] = used;
      };
      if (parts == 1) {
        run_group(*s_, 0);
      } else {
        parallel_for(parts, static_cast<int>(parts), [&](std::size_t k) { run_group(*thread_compressor().s_, k); });
      }
      std::size_t pos = kHeader;
      for (std::size_t k = 0; k < parts; ++k) {
        const std::size_t from = kHeader + slot_of(group_begin(nblocks, parts, k));
        if (from != pos) std::memmove(out.data() + pos, out.data() + from, group_bytes[k]);
        pos += group_bytes[k];
      }
      const std::size_t left = g.leftover * elem_size;
      if (left) std::memcpy(out.data() + pos, in.data() + nbytes - left, left);
      return pos + left;
    }
    case Codec::lz4: {
      std::size_t bs = opt.block_size ? opt.block_size : kLz4DefaultBlock;
      if (bs > nbytes) bs = nbytes;
      if (bs > 0x7E000000u) throw ValueError("lz4: block size too large");
      put_be64(out.data(), nbytes);
      put_be32(out.data() + 8, static_cast<std::uint32_t>(bs));
      std::size_t pos = kHeader;
      for (std::size_t done = 0; done < nbytes;) {
        const std::size_t m = std::min(bs, nbytes - done);
        std::byte* dst = out.data() + pos + 4;
        const int c = LZ4_compress_fast_extState(s_->lz4.get(), reinterpret_cast<const char*>(in.data() + done),
                                                 reinterpret_cast<char*>(dst), static_cast<int>(m), static_cast<int>(m) - 1, 1);
        std::size_t csize = static_cast<std::size_t>(c);
        if (c <= 0 || csize >= m) {  // did not shrink: stored raw, as hdf5plugin does
          std::memcpy(dst, in.data() + done, m);
          csize = m;
        }
        put_be32(out.data() + pos, static_cast<std::uint32_t>(csize));
        pos += 4 + csize;
        done += m;
      }
      return pos;
    }
    case Codec::zstd: {
      const std::size_t r = ZSTD_compressCCtx(s_->zc(), out.data(), out.size(), in.data(), nbytes,
                                              opt.level > 0 ? opt.level : kZstdDefaultLevel);
      if (ZSTD_isError(r)) throw ValueError(std::string("zstd compression failed: ") + ZSTD_getErrorName(r));
      return r;
    }
  }
  return 0;
}

void Compressor::decompress(std::span<const std::byte> chunk, std::size_t elem_size, std::span<std::byte> out,
                            Codec codec, int threads) {
  const std::string name(codec_name(codec));
  if ((codec == Codec::bslz4 || codec == Codec::bszstd) && (elem_size == 0 || out.size() % elem_size != 0)) {
    throw ValueError("decompress: output is not a whole number of elements");
  }
  // The output is the caller's (already allocated), so no size limit here; but the headers
  // must be able to produce it before any block table or scratch is sized from them.
  constexpr std::uint64_t kNoLimit = ~std::uint64_t{0};
  check_chunk(codec, chunk, elem_size, out.size(), DecodeLimits{kNoLimit, kNoLimit});
  switch (codec) {
    case Codec::bslz4:
    case Codec::bszstd: {
      const std::size_t bbytes = get_be32(chunk.data() + 8);
      const BsGeometry g = bs_geometry(out.size(), elem_size, bbytes / elem_size);
      const std::size_t nblocks = g.blocks();
      const std::size_t parts = nblocks == 0 ? 1 : resolve_threads(threads, nblocks);
      const std::size_t left = g.leftover * elem_size;
      // A large output (a decoded frame) bypasses the cache: it would only evict what the
      // decoder reads, and with plain stores every line was read from memory before it was
      // written (a JF4M frame: 8 MB more memory traffic)
      const bool stream = active_isa() == Isa::avx512 && out.size() >= kStreamOutBytes;
      struct Fence {
        bool on;
        ~Fence() {
          if (on) avx512::stream_fence();
        }
      };
      struct Trim {  // a state's scratch back to its retained size, however the blocks end
        CompressorState& s;
        ~Trim() { s.trim(); }
      };
      auto size_at = [&](std::size_t i, std::size_t pos) {
        if (chunk.size() - pos < 4) {
          throw CorruptDataError(name + " chunk: truncated at block " + sz(i) + " of " + sz(nblocks) + " (offset " + sz(pos) +
                                 ", chunk " + sz(chunk.size()) + " bytes)");
        }
        const std::size_t c = get_be32(chunk.data() + pos);
        if (c > chunk.size() - pos - 4) {
          throw CorruptDataError(name + " chunk: block " + sz(i) + " claims " + sz(c) + " compressed bytes but only " +
                                 sz(chunk.size() - pos - 4) + " remain");
        }
        return c;
      };
      auto check_tail = [&](std::size_t pos) {
        if (chunk.size() - pos != left) {
          throw CorruptDataError(name + " chunk: " + sz(chunk.size() - pos) + " bytes after the last block, expected " +
                                 sz(left) + " raw trailing bytes");
        }
      };
      if (parts == 1) {
        // One pass: each block's size is read as its bytes are decoded, so the chunk streams
        // through the cache once (a separate pass to locate the blocks first missed the cache at
        // every block header: 9% of a receiver's time on Jungfrau photon frames).
        const Trim trim{*s_};
        const Fence fence{stream};
        std::size_t pos = kHeader;
        for (std::size_t i = 0; i < nblocks; ++i) {
          const std::size_t c = size_at(i, pos);
          s_->bs_unblock(chunk.data() + pos + 4, c, g.block_elems(i), elem_size, out.data() + i * g.block * elem_size,
                         codec, i, stream);
          pos += 4 + c;
        }
        check_tail(pos);
        if (left) std::memcpy(out.data() + out.size() - left, chunk.data() + pos, left);
        return;
      }
      // Locate every block first (cheap), so that blocks can be decoded in parallel.
      std::vector<std::size_t> starts(nblocks), sizes(nblocks);
      std::size_t pos = kHeader;
      for (std::size_t i = 0; i < nblocks; ++i) {
        const std::size_t c = size_at(i, pos);
        starts[i] = pos + 4;
        sizes[i] = c;
        pos += 4 + c;
      }
      check_tail(pos);
      auto run = [&](CompressorState& st, std::size_t b0, std::size_t b1) {
        const Trim trim{st};
        const Fence fence{stream};
        for (std::size_t i = b0; i < b1; ++i) {
          st.bs_unblock(chunk.data() + starts[i], sizes[i], g.block_elems(i), elem_size,
                        out.data() + i * g.block * elem_size, codec, i, stream);
        }
      };
      parallel_for(parts, static_cast<int>(parts), [&](std::size_t k) {
        run(*thread_compressor().s_, group_begin(nblocks, parts, k), group_begin(nblocks, parts, k + 1));
      });
      if (left) std::memcpy(out.data() + out.size() - left, chunk.data() + pos, left);
      return;
    }
    case Codec::lz4: {
      std::size_t bs = get_be32(chunk.data() + 8);
      const std::size_t total = out.size();
      if (bs > total) bs = total;
      if (bs == 0 && total != 0) throw CorruptDataError("lz4 chunk: block size 0");
      std::size_t pos = kHeader, done = 0, index = 0;
      while (done < total) {
        const std::size_t m = std::min(bs, total - done);
        if (chunk.size() - pos < 4) {
          throw CorruptDataError("lz4 chunk: truncated at block " + sz(index) + " (offset " + sz(pos) + ", chunk " +
                                 sz(chunk.size()) + " bytes)");
        }
        const std::size_t c = get_be32(chunk.data() + pos);
        pos += 4;
        if (c > chunk.size() - pos) {
          throw CorruptDataError("lz4 chunk: block " + sz(index) + " claims " + sz(c) + " compressed bytes but only " +
                                 sz(chunk.size() - pos) + " remain");
        }
        if (c == m) {
          std::memcpy(out.data() + done, chunk.data() + pos, m);
        } else {
          const int r = LZ4_decompress_safe(reinterpret_cast<const char*>(chunk.data() + pos),
                                            reinterpret_cast<char*>(out.data() + done), static_cast<int>(c), static_cast<int>(m));
          if (r < 0 || static_cast<std::size_t>(r) != m) {
            throw CorruptDataError("lz4 chunk: block " + sz(index) + " (" + sz(c) + " compressed bytes) does not decode to " +
                                   sz(m) + " bytes");
          }
        }
        pos += c;
        done += m;
        ++index;
      }
      if (pos != chunk.size()) {
        throw CorruptDataError("lz4 chunk: " + sz(chunk.size() - pos) + " unexpected bytes after the last block");
      }
      return;
    }
    case Codec::zstd: {
      const std::size_t r = ZSTD_decompressDCtx(s_->zd(), out.data(), out.size(), chunk.data(), chunk.size());
      if (ZSTD_isError(r)) throw CorruptDataError(std::string("zstd chunk: ") + ZSTD_getErrorName(r));
      if (r != out.size()) throw CorruptDataError("zstd chunk: decoded " + sz(r) + " bytes, expected " + sz(out.size()));
      return;
    }
  }
}

std::size_t compress_chunk(std::span<const std::byte> in, std::size_t elem_size, std::span<std::byte> out,
                           const CodecOptions& opt, int threads) {
  return thread_compressor().compress(in, elem_size, out, opt, threads);
}

void decompress_chunk(std::span<const std::byte> chunk, std::size_t elem_size, std::span<std::byte> out, Codec codec,
                      int threads) {
  thread_compressor().decompress(chunk, elem_size, out, codec, threads);
}

// ---- batches ---------------------------------------------------------------------------

std::size_t compress_frames_bound(const CodecOptions& opt, std::size_t frames, std::size_t frame_bytes,
                                  std::size_t elem_size) {
  return frames * compress_bound(opt, frame_bytes, elem_size);
}

std::size_t compress_frames(std::span<const std::byte> in, std::size_t frames, std::size_t elem_size,
                            std::span<std::byte> out, const CodecOptions& opt, int threads,
                            std::vector<std::size_t>& offsets, std::vector<std::size_t>& sizes) {
  offsets.assign(frames, 0);
  sizes.assign(frames, 0);
  if (frames == 0) return 0;
  if (in.size() % frames != 0) throw ValueError("compress_frames: input is not a whole number of frames");
  const std::size_t fb = in.size() / frames;
  const std::size_t slot = compress_bound(opt, fb, elem_size);
  check_out(out, slot * frames, "compress_frames");
  // Each thread packs a contiguous range of frames from the start of the range's worst-case
  // space; the ranges are then moved down in order (one move per thread, not per frame).
  const unsigned t = resolve_threads(threads, frames);
  if (frames == 1) {
    sizes[0] = thread_compressor().compress(in, elem_size, out.first(slot), opt, threads);
    return sizes[0];
  }
  std::vector<std::size_t> used(t, 0);
  parallel_for(t, static_cast<int>(t), [&](std::size_t k) {
    const std::size_t f0 = group_begin(frames, t, k), f1 = group_begin(frames, t, k + 1);
    Compressor& c = thread_compressor();
    std::size_t pos = f0 * slot;
    for (std::size_t i = f0; i < f1; ++i) {
      sizes[i] = c.compress(in.subspan(i * fb, fb), elem_size, out.subspan(pos, slot), opt, 1);
      offsets[i] = pos;
      pos += sizes[i];
    }
    used[k] = pos - f0 * slot;
  });
  std::size_t pos = 0;
  for (std::size_t k = 0; k < t; ++k) {
    const std::size_t f0 = group_begin(frames, t, k), f1 = group_begin(frames, t, k + 1);
    const std::size_t from = f0 * slot;
    if (from != pos && used[k]) std::memmove(out.data() + pos, out.data() + from, used[k]);
    for (std::size_t i = f0; i < f1; ++i) offsets[i] = offsets[i] - from + pos;
    pos += used[k];
  }
  return pos;
}

CompressedFrames compress_frames(std::span<const std::byte> in, std::size_t frames, std::size_t elem_size,
                                 BufferPool& pool, const CodecOptions& opt, int threads) {
  CompressedFrames r;
  const std::size_t need = frames == 0 ? 0 : compress_frames_bound(opt, frames, in.size() / frames, elem_size);
  if (pool.buffer_bytes() < need) {
    throw CapacityError("compress_frames: pool buffers hold " + sz(pool.buffer_bytes()) + " bytes, need " + sz(need));
  }
  r.buffer = pool.acquire();
  compress_frames(in, frames, elem_size, r.buffer.span(), opt, threads, r.offsets, r.sizes);
  return r;
}

CompressedFrames compress_batch(const Batch& batch, BufferPool& pool, const CodecOptions& opt, int threads) {
  return compress_frames(batch.bytes(), batch.size(), dtype_size(batch.dtype()), pool, opt, threads);
}

void decompress_frames(std::span<const std::byte> chunks, std::span<const std::size_t> offsets,
                       std::span<const std::size_t> sizes, std::size_t elem_size, std::span<std::byte> out, Codec codec,
                       int threads) {
  const std::size_t frames = offsets.size();
  if (sizes.size() != frames) throw ValueError("decompress_frames: offsets and sizes differ in length");
  if (frames == 0) return;
  if (out.size() % frames != 0) throw ValueError("decompress_frames: output is not a whole number of frames");
  const std::size_t fb = out.size() / frames;
  for (std::size_t i = 0; i < frames; ++i) {
    if (offsets[i] > chunks.size() || sizes[i] > chunks.size() - offsets[i]) {
      throw CorruptDataError("decompress_frames: chunk " + sz(i) + " (offset " + sz(offsets[i]) + ", " + sz(sizes[i]) +
                             " bytes) lies outside the " + sz(chunks.size()) + "-byte buffer");
    }
  }
  const unsigned t = resolve_threads(threads, frames);
  parallel_for(frames, static_cast<int>(t), [&](std::size_t i) {
    thread_compressor().decompress(chunks.subspan(offsets[i], sizes[i]), elem_size, out.subspan(i * fb, fb), codec,
                                   frames == 1 ? threads : 1);
  });
}

}  // namespace lclstream
