// Codecs: chunks in the HDF5 filters' layouts. Inputs are taken without copies (buffer
// protocol, C-contiguous), outputs are numpy uint8 arrays (or the caller's `out`); the GIL is
// released around every kernel.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

#include "bindings.hpp"
#include "lclstream/codec.hpp"
#include "lclstream/decode_limits.hpp"
#include "lclstream/error.hpp"

namespace lclstream::py_bind {
namespace {

std::span<const std::byte> bytes_of(const py::buffer& b, const char* what) {
  py::buffer_info info = b.request();
  // A 1-D or C-contiguous buffer: strides must match a packed row-major layout.
  py::ssize_t expect = info.itemsize;
  for (py::ssize_t i = info.ndim; i-- > 0;) {
    if (info.shape[i] != 1 && info.strides[i] != expect) {
      throw ValueError(std::string(what) + " must be a C-contiguous buffer");
    }
    expect *= info.shape[i];
  }
  return {static_cast<const std::byte*>(info.ptr), static_cast<std::size_t>(info.size * info.itemsize)};
}

CodecOptions options(const std::string& codec, int level, std::size_t block_size) {
  CodecOptions o;
  o.codec = codec_from_name(codec);
  o.level = level;
  o.block_size = block_size;
  return o;
}

std::size_t elem_size_of(const py::array& a) { return dtype_size(dtype_of(a)); }

py::array_t<std::uint8_t> out_or_new(const py::object& out, std::size_t bytes, const char* what) {
  if (out.is_none()) return py::array_t<std::uint8_t>(static_cast<py::ssize_t>(bytes));
  auto arr = py::cast<py::array>(out);
  if (arr.dtype().kind() != 'u' || arr.itemsize() != 1 || arr.ndim() != 1) {
    throw ValueError(std::string(what) + " must be a 1-D uint8 array");
  }
  writable_bytes(arr, what);
  if (static_cast<std::size_t>(arr.nbytes()) < bytes) {
    throw CapacityError(std::string(what) + " holds " + std::to_string(arr.nbytes()) + " bytes, needs " + std::to_string(bytes));
  }
  return py::reinterpret_borrow<py::array_t<std::uint8_t>>(arr);
}

py::array make_output(const py::object& out, const py::dtype& dt, const std::vector<py::ssize_t>& shape) {
  if (out.is_none()) {
    // 64-byte aligned (numpy's own allocations are 16-byte aligned): the decoder writes large
    // outputs with streaming stores, which need whole aligned lines
    std::size_t bytes = static_cast<std::size_t>(dt.itemsize());
    for (const auto d : shape) bytes *= static_cast<std::size_t>(d);
    std::unique_ptr<void, void (*)(void*)> mem(std::aligned_alloc(64, std::max<std::size_t>(64, (bytes + 63) / 64 * 64)),
                                               &std::free);
    if (!mem) throw std::bad_alloc();
    void* p = mem.get();
    py::capsule owner(mem.release(), [](void* q) { std::free(q); });
    return py::array(dt, shape, {}, p, owner);
  }
  auto arr = py::cast<py::array>(out);
  writable_bytes(arr, "decompress: out");
  if (!arr.dtype().equal(dt)) throw ValueError("decompress: out has the wrong dtype");
  bool same = static_cast<std::size_t>(arr.ndim()) == shape.size();
  for (std::size_t i = 0; same && i < shape.size(); ++i) same = arr.shape(static_cast<py::ssize_t>(i)) == shape[i];
  if (!same) throw ValueError("decompress: out has the wrong shape");
  return arr;
}

/// The limits a call applies: `limits` (None: the defaults). With a caller's `out` nothing is
/// allocated here, so only the header checks apply (the caller sized `out`).
DecodeLimits limits_for(const std::optional<DecodeLimits>& limits, const py::object& out) {
  if (!out.is_none()) {
    constexpr std::uint64_t kNoLimit = ~std::uint64_t{0};
    return DecodeLimits{kNoLimit, kNoLimit};
  }
  return limits ? *limits : DecodeLimits{};
}

std::vector<std::uint64_t> dims_of(const std::vector<py::ssize_t>& shape, std::size_t from, const char* what) {
  std::vector<std::uint64_t> d;
  for (std::size_t i = from; i < shape.size(); ++i) {
    if (shape[i] < 0) throw ValueError(std::string(what) + ": negative dimension in shape");
    d.push_back(static_cast<std::uint64_t>(shape[i]));
  }
  return d;
}

}  // namespace
}  // namespace lclstream::py_bind

using namespace lclstream;
using namespace lclstream::py_bind;

LCLSTREAM_BINDING(codec) {
  py::class_<CompressedFrames, std::shared_ptr<CompressedFrames>>(m, "CompressedFrames",
      "One chunk per event, packed in a buffer borrowed from a BufferPool; views keep it alive.")
      .def_property_readonly("offsets", [](const CompressedFrames& c) {
        py::array_t<std::int64_t> a(static_cast<py::ssize_t>(c.offsets.size()));
        for (std::size_t i = 0; i < c.offsets.size(); ++i) a.mutable_at(static_cast<py::ssize_t>(i)) = static_cast<std::int64_t>(c.offsets[i]);
        return a;
      })
      .def_property_readonly("sizes", [](const CompressedFrames& c) {
        py::array_t<std::int64_t> a(static_cast<py::ssize_t>(c.sizes.size()));
        for (std::size_t i = 0; i < c.sizes.size(); ++i) a.mutable_at(static_cast<py::ssize_t>(i)) = static_cast<std::int64_t>(c.sizes[i]);
        return a;
      })
      .def_property_readonly("nbytes", &CompressedFrames::total_bytes)
      .def("buffer", [](const std::shared_ptr<CompressedFrames>& c) {
        if (!c->buffer) throw ValueError("CompressedFrames: released");
        return py::array(py::dtype("uint8"), {static_cast<py::ssize_t>(c->total_bytes())}, {1}, c->buffer.data(), py::cast(c));
      }, "All chunks, back to back, as a uint8 view of the pooled buffer (no copy).")
      .def("chunk", [](const std::shared_ptr<CompressedFrames>& c, std::size_t i) {
        if (!c->buffer) throw ValueError("CompressedFrames: released");
        if (i >= c->sizes.size()) throw py::index_error("CompressedFrames: no chunk " + std::to_string(i));
        return py::array(py::dtype("uint8"), {static_cast<py::ssize_t>(c->sizes[i])}, {1}, c->buffer.data() + c->offsets[i], py::cast(c));
      }, py::arg("i"), "Event i's chunk as a uint8 view (no copy).")
      .def("release", [](CompressedFrames& c) { c.buffer.reset(); },
           "Give the buffer back to its pool now (views must no longer be used).")
      .def("__len__", [](const CompressedFrames& c) { return c.sizes.size(); });

  m.def("codec_compress_frames_pooled", [](const py::array& a, BufferPool& pool, const std::string& codec, int level,
                                           int threads) {
        require_contiguous(a, "compress_frames: array");
        if (a.ndim() < 1) throw ValueError("compress_frames: array needs a leading event axis");
        const auto opt = options(codec, level, 0);
        const std::size_t es = elem_size_of(a);
        std::span<const std::byte> in(static_cast<const std::byte*>(a.data()), static_cast<std::size_t>(a.nbytes()));
        const auto frames = static_cast<std::size_t>(a.shape(0));
        std::shared_ptr<CompressedFrames> r;
        {
          py::gil_scoped_release nogil;
          r = std::make_shared<CompressedFrames>(compress_frames(in, frames, es, pool, opt, threads));
        }
        return r;
      }, py::arg("array"), py::arg("pool"), py::arg("codec") = "bslz4", py::arg("level") = 0, py::arg("threads") = 0,
      "compress_frames into a buffer acquired from `pool` (blocks while none is free).");
  m.def("codec_compress_frames_bound", [](const std::string& codec, std::size_t frames, std::size_t frame_bytes,
                                          std::size_t elem_size, int level) {
        return compress_frames_bound(options(codec, level, 0), frames, frame_bytes, elem_size);
      }, py::arg("codec"), py::arg("frames"), py::arg("frame_bytes"), py::arg("elem_size"), py::arg("level") = 0);

  m.def("codec_compress_bound", [](const std::string& codec, std::size_t nbytes, std::size_t elem_size, int level,
                                   std::size_t block_size) {
        return compress_bound(options(codec, level, block_size), nbytes, elem_size);
      }, py::arg("codec"), py::arg("nbytes"), py::arg("elem_size"), py::arg("level") = 0, py::arg("block_size") = 0);

  m.def("codec_compress", [](const py::array& a, const std::string& codec, int level, int threads,
                             std::size_t block_size, const py::object& out) {
        require_contiguous(a, "compress: array");
        const auto opt = options(codec, level, block_size);
        const std::size_t es = elem_size_of(a);
        std::span<const std::byte> in(static_cast<const std::byte*>(a.data()), static_cast<std::size_t>(a.nbytes()));
        const std::size_t bound = compress_bound(opt, in.size(), es);
        auto buf = out_or_new(out, bound, "compress: out");
        std::span<std::byte> o(reinterpret_cast<std::byte*>(buf.mutable_data()), static_cast<std::size_t>(buf.nbytes()));
        std::size_t n = 0;
        {
          py::gil_scoped_release nogil;
          n = compress_chunk(in, es, o, opt, threads);
        }
        return py::object(buf[py::slice(0, static_cast<py::ssize_t>(n), 1)]);
      }, py::arg("array"), py::arg("codec") = "bslz4", py::arg("level") = 0, py::arg("threads") = 1,
      py::arg("block_size") = 0, py::arg("out") = py::none(),
      "One chunk for the whole array in the HDF5 filter's layout; a uint8 view of (part of) `out`.");

  py::class_<DecodeLimits>(m, "DecodeLimits",
      "Decoded bytes a chunk may declare and a call (one message) may produce; checked, with what "
      "the chunk's headers can produce, before anything is allocated.")
      .def(py::init([](std::uint64_t max_chunk_bytes, std::uint64_t max_message_bytes) {
             return DecodeLimits{max_chunk_bytes, max_message_bytes};
           }),
           py::kw_only(), py::arg("max_chunk_bytes") = kDefaultMaxDecodedBytes,
           py::arg("max_message_bytes") = kDefaultMaxDecodedBytes)
      .def_readwrite("max_chunk_bytes", &DecodeLimits::max_chunk_bytes)
      .def_readwrite("max_message_bytes", &DecodeLimits::max_message_bytes)
      .def("__repr__", [](const DecodeLimits& l) {
        return "DecodeLimits(max_chunk_bytes=" + std::to_string(l.max_chunk_bytes) +
               ", max_message_bytes=" + std::to_string(l.max_message_bytes) + ")";
      });
  m.attr("DEFAULT_MAX_DECODED_BYTES") = kDefaultMaxDecodedBytes;
  m.attr("MAX_RETAINED_SCRATCH") = kMaxRetainedScratch;
  m.def("codec_max_decoded_bytes", [](const std::string& codec, std::size_t compressed) {
        return max_decoded_bytes(codec_from_name(codec), compressed);
      }, py::arg("codec"), py::arg("compressed"),
      "The most bytes `compressed` bytes of a chunk can decode to, by the format's own limits.");
  m.def("codec_check_chunk", [](const py::buffer& chunk, const std::string& codec, std::size_t elem_size,
                                std::uint64_t expected, const std::optional<DecodeLimits>& limits) {
        check_chunk(codec_from_name(codec), bytes_of(chunk, "chunk"), elem_size, expected,
                    limits ? *limits : DecodeLimits{});
      }, py::arg("chunk"), py::arg("codec"), py::arg("elem_size"), py::arg("expected"), py::arg("limits") = py::none(),
      "Raises CorruptDataError / CapacityError for a chunk that cannot or may not decode to `expected` bytes.");

  m.def("codec_decompress", [](const py::buffer& chunk, const std::string& codec, const py::dtype& dt,
                               const std::vector<py::ssize_t>& shape, int threads, const py::object& out,
                               const std::optional<DecodeLimits>& limits) {
        auto c = bytes_of(chunk, "decompress: chunk");
        const Codec k = codec_from_name(codec);
        // Refuse a chunk whose declared size is not dtype x shape, is over the limits, or
        // cannot come out of its bytes, before allocating anything.
        const DecodeLimits lim = limits_for(limits, out);
        const auto dims = dims_of(shape, 0, "decompress");
        const auto item = static_cast<std::size_t>(dt.itemsize());
        const std::uint64_t want = checked_decoded_size(item, dims, std::min(lim.max_chunk_bytes, lim.max_message_bytes),
                                                        "decompress");
        check_chunk(k, c, item, want, lim);
        py::array res = make_output(out, dt, shape);
        const std::size_t es = elem_size_of(res);
        auto o = writable_bytes(res, "decompress: out");
        {
          py::gil_scoped_release nogil;
          decompress_chunk(c, es, o, k, threads);
        }
        return res;
      }, py::arg("chunk"), py::arg("codec"), py::arg("dtype"), py::arg("shape"), py::arg("threads") = 1,
      py::arg("out") = py::none(), py::arg("limits") = py::none());

  m.def("codec_compress_frames", [](const py::array& a, const std::string& codec, int level, int threads,
                                    std::size_t block_size, const py::object& out) {
        require_contiguous(a, "compress_frames: array");
        if (a.ndim() < 1) throw ValueError("compress_frames: array needs a leading event axis");
        const auto opt = options(codec, level, block_size);
        const std::size_t es = elem_size_of(a);
        const std::size_t frames = static_cast<std::size_t>(a.shape(0));
        std::span<const std::byte> in(static_cast<const std::byte*>(a.data()), static_cast<std::size_t>(a.nbytes()));
        const std::size_t fb = frames ? in.size() / frames : 0;
        auto buf = out_or_new(out, compress_frames_bound(opt, frames, fb, es), "compress_frames: out");
        std::span<std::byte> o(reinterpret_cast<std::byte*>(buf.mutable_data()), static_cast<std::size_t>(buf.nbytes()));
        std::vector<std::size_t> offsets, sizes;
        std::size_t total = 0;
        {
          py::gil_scoped_release nogil;
          total = compress_frames(in, frames, es, o, opt, threads, offsets, sizes);
        }
        py::array_t<std::int64_t> off(static_cast<py::ssize_t>(frames)), siz(static_cast<py::ssize_t>(frames));
        for (std::size_t i = 0; i < frames; ++i) {
          off.mutable_at(static_cast<py::ssize_t>(i)) = static_cast<std::int64_t>(offsets[i]);
          siz.mutable_at(static_cast<py::ssize_t>(i)) = static_cast<std::int64_t>(sizes[i]);
        }
        return py::make_tuple(py::object(buf[py::slice(0, static_cast<py::ssize_t>(total), 1)]), off, siz);
      }, py::arg("array"), py::arg("codec") = "bslz4", py::arg("level") = 0, py::arg("threads") = 0,
      py::arg("block_size") = 0, py::arg("out") = py::none());

  m.def("codec_decompress_frames", [](const py::buffer& chunks, const py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>& offsets,
                                      const py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>& sizes,
                                      const std::string& codec, const py::dtype& dt, const std::vector<py::ssize_t>& shape,
                                      int threads, const py::object& out, const std::optional<DecodeLimits>& limits) {
        auto c = bytes_of(chunks, "decompress_frames: chunks");
        if (offsets.ndim() != 1 || sizes.ndim() != 1 || offsets.size() != sizes.size()) {
          throw ValueError("decompress_frames: offsets and sizes must be 1-D of equal length");
        }
        if (shape.empty() || shape[0] != offsets.size()) {
          throw ValueError("decompress_frames: shape[0] must equal the number of chunks");
        }
        std::vector<std::size_t> off(static_cast<std::size_t>(offsets.size())), siz(off.size());
        for (std::size_t i = 0; i < off.size(); ++i) {
          const auto oi = offsets.at(static_cast<py::ssize_t>(i)), si = sizes.at(static_cast<py::ssize_t>(i));
          if (oi < 0 || si < 0) throw ValueError("decompress_frames: negative offset or size");
          off[i] = static_cast<std::size_t>(oi);
          siz[i] = static_cast<std::size_t>(si);
        }
        // Every chunk's header is checked against the frame size and the limits before the
        // output (frames x frame bytes, itself limited per message) is allocated.
        const Codec k = codec_from_name(codec);
        const DecodeLimits lim = limits_for(limits, out);
        const auto es_declared = static_cast<std::size_t>(dt.itemsize());
        const std::uint64_t fb = checked_decoded_size(es_declared, dims_of(shape, 1, "decompress_frames"),
                                                      lim.max_chunk_bytes, "decompress_frames: frame");
        check_message_bytes(checked_decoded_size(es_declared, dims_of(shape, 0, "decompress_frames"),
                                                 lim.max_message_bytes, "decompress_frames"), lim);
        for (std::size_t i = 0; i < off.size(); ++i) {
          if (off[i] > c.size() || siz[i] > c.size() - off[i]) {
            throw CorruptDataError("decompress_frames: chunk " + std::to_string(i) + " (offset " + std::to_string(off[i]) +
                                   ", " + std::to_string(siz[i]) + " bytes) lies outside the " + std::to_string(c.size()) +
                                   "-byte buffer");
          }
          check_chunk(k, c.subspan(off[i], siz[i]), es_declared, fb, lim);
        }
        py::array res = make_output(out, dt, shape);
        const std::size_t es = elem_size_of(res);
        auto o = writable_bytes(res, "decompress_frames: out");
        {
          py::gil_scoped_release nogil;
          decompress_frames(c, off, siz, es, o, k, threads);
        }
        return res;
      }, py::arg("chunks"), py::arg("offsets"), py::arg("sizes"), py::arg("codec"), py::arg("dtype"), py::arg("shape"),
      py::arg("threads") = 0, py::arg("out") = py::none(), py::arg("limits") = py::none());

  m.def("codec_hdf5_filter", [](const std::string& codec, int level) {
        const Codec k = codec_from_name(codec);
        auto opts = hdf5_filter_options(k, level);
        py::tuple t(opts.size());
        for (std::size_t i = 0; i < opts.size(); ++i) t[i] = opts[i];
        return py::make_tuple(hdf5_filter_id(k), t);
      }, py::arg("codec"), py::arg("level") = 0);

  m.def("codec_uncompressed_size", [](const py::buffer& chunk, const std::string& codec) {
        return chunk_uncompressed_size(codec_from_name(codec), bytes_of(chunk, "chunk"));
      }, py::arg("chunk"), py::arg("codec"));

  m.def("bitshuffle_default_block_size", &bitshuffle_default_block_size, py::arg("elem_size"));

  m.def("bslz4_plane_paths", [](const py::array& a, std::size_t block_size) {
        require_contiguous(a, "bslz4_plane_paths: array");
        std::span<const std::byte> in(static_cast<const std::byte*>(a.data()), static_cast<std::size_t>(a.nbytes()));
        const std::size_t es = elem_size_of(a);
        PlanePaths p;
        {
          py::gil_scoped_release nogil;
          p = bslz4_plane_paths(in, es, block_size);
        }
        py::dict d;
        d["constant"] = p.constant;
        d["zero_runs"] = p.zero_runs;
        d["ff_runs"] = p.ff_runs;
        d["copies"] = p.copies;
        d["literals"] = p.literals;
        d["lz4"] = p.lz4;
        return d;
      }, py::arg("array"), py::arg("block_size") = 0,
      "How the bslz4 encoder encodes each bit plane of the array (counts of planes by path).");

  auto shuffle = [](bool forward) {
    return [forward](const py::array& a, std::size_t block_size) {
      require_contiguous(a, "bitshuffle: array");
      const std::size_t es = elem_size_of(a);
      std::vector<py::ssize_t> shape(a.shape(), a.shape() + a.ndim());
      py::array res(a.dtype(), shape);
      std::span<const std::byte> in(static_cast<const std::byte*>(a.data()), static_cast<std::size_t>(a.nbytes()));
      auto o = writable_bytes(res, "bitshuffle: out");
      {
        py::gil_scoped_release nogil;
        if (forward) {
          bitshuffle(in, o, es, block_size);
        } else {
          bitunshuffle(in, o, es, block_size);
        }
      }
      return res;
    };
  };
  m.def("bitshuffle", shuffle(true), py::arg("array"), py::arg("block_size") = 0,
        "bshuf_bitshuffle: bit-transposes each block (same bytes as the bitshuffle package).");
  m.def("bitunshuffle", shuffle(false), py::arg("array"), py::arg("block_size") = 0);
}
