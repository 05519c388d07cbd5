// Sparse photon lists: encode frames to (offsets, index, values), decode them back. GIL released.
#include <cstdint>
#include <span>
#include <string>

#include "bindings.hpp"
#include "lclstream/error.hpp"
#include "lclstream/sparse.hpp"

namespace lclstream::py_bind {
namespace {

template <class T>
std::span<const T> view_of(const py::array& a) {
  return {static_cast<const T*>(a.data()), static_cast<std::size_t>(a.size())};
}

template <class T>
py::tuple encode_as(const py::array& frames, std::size_t px, int threads) {
  auto in = view_of<T>(frames);
  sparse::Lists<T> l;
  {
    py::gil_scoped_release nogil;
    l = sparse::encode(in, px, threads);
  }
  return py::make_tuple(to_numpy(l.offsets), to_numpy(l.index), to_numpy(l.values));
}

template <class T>
void decode_as(const py::array& offsets, const py::array& index, const py::array& values, const py::array& out,
               std::size_t px, int threads) {
  auto o = view_of<std::uint64_t>(offsets);
  auto i = view_of<std::uint32_t>(index);
  auto v = view_of<T>(values);
  std::span<T> dst(static_cast<T*>(const_cast<void*>(out.data())), static_cast<std::size_t>(out.size()));
  py::gil_scoped_release nogil;
  sparse::decode(o, i, v, dst, px, threads);
}

void require(const py::array& a, DType t, const char* what) {
  require_contiguous(a, what);
  if (dtype_of(a) != t) {
    throw ValueError(std::string(what) + " must be " + std::string(dtype_name(t)) + ", got " +
                     std::string(dtype_name(dtype_of(a))));
  }
}

}  // namespace
}  // namespace lclstream::py_bind

using namespace lclstream;
using namespace lclstream::py_bind;

LCLSTREAM_BINDING(sparse) {
  m.def("sparse_encode", [](const py::array& frames, std::size_t frame_pixels, int threads) -> py::tuple {
        require_contiguous(frames, "sparse_encode: frames");
        const DType t = dtype_of(frames);
        if (t == DType::u16) return encode_as<std::uint16_t>(frames, frame_pixels, threads);
        if (t == DType::u32) return encode_as<std::uint32_t>(frames, frame_pixels, threads);
        throw ValueError("sparse_encode: photon counts are uint16 or uint32, got " + std::string(dtype_name(t)));
      }, py::arg("frames"), py::arg("frame_pixels"), py::arg("threads") = 0,
      "(offsets uint64[frames+1], index uint32, values) of every nonzero pixel.");
  m.def("sparse_decode", [](const py::array& offsets, const py::array& index, const py::array& values,
                            const py::array& out, std::size_t frame_pixels, int threads) {
        require(offsets, DType::u64, "sparse_decode: offsets");
        require(index, DType::u32, "sparse_decode: index");
        writable_bytes(out, "sparse_decode: out");
        const DType t = dtype_of(out);
        if (t != DType::u16 && t != DType::u32) {
          throw ValueError("sparse_decode: out must be uint16 or uint32, got " + std::string(dtype_name(t)));
        }
        require(values, t, "sparse_decode: values (the frames' dtype)");
        if (t == DType::u16) {
          decode_as<std::uint16_t>(offsets, index, values, out, frame_pixels, threads);
        } else {
          decode_as<std::uint32_t>(offsets, index, values, out, frame_pixels, threads);
        }
      }, py::arg("offsets"), py::arg("index"), py::arg("values"), py::arg("out"), py::arg("frame_pixels"),
      py::arg("threads") = 0, "Zero `out`, then write every entry (the lists are checked first).");
}
