// Reduction kernels (zero below threshold, ROI crop, pixel binning): thin, GIL released.
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>

#include "bindings.hpp"
#include "lclstream/error.hpp"
#include "lclstream/reduce.hpp"

namespace lclstream::py_bind {
namespace {

reduce::FrameStack stack_of(const py::array& a, const char* what) {
  if (a.ndim() < 2) throw ValueError(std::string(what) + ": needs at least 2 dimensions (rows, cols)");
  reduce::FrameStack s;
  s.rows = static_cast<std::size_t>(a.shape(a.ndim() - 2));
  s.cols = static_cast<std::size_t>(a.shape(a.ndim() - 1));
  s.frames = s.rows * s.cols == 0 ? 0 : static_cast<std::size_t>(a.size()) / (s.rows * s.cols);
  return s;
}

template <class T>
std::span<T> span_of(const py::array& a) {
  return {static_cast<T*>(const_cast<void*>(a.data())), static_cast<std::size_t>(a.size())};
}

/// zero_below for unsigned counts; `threshold` is in [0, 2^bits]. A threshold above the
/// largest value zeroes every pixel (the kernel takes T, so those are counted and cleared here).
template <class T>
std::uint64_t zero_below_counts(std::span<T> s, double threshold, int threads) {
  constexpr std::uint64_t top = std::numeric_limits<T>::max();
  const auto thr = static_cast<std::uint64_t>(std::ceil(threshold));
  py::gil_scoped_release nogil;
  if (thr <= top) return reduce::zero_below(s, static_cast<T>(thr), threads);
  std::uint64_t n = reduce::zero_below(s, static_cast<T>(top), threads);
  for (auto& v : s) {
    n += v != 0;
    v = 0;
  }
  return n;
}

}  // namespace
}  // namespace lclstream::py_bind

using namespace lclstream;
using namespace lclstream::py_bind;

LCLSTREAM_BINDING(reduce) {
  m.def("zero_below", [](const py::array& data, double threshold, int threads) {
        writable_bytes(data, "zero_below: data");
        const DType t = dtype_of(data);
        std::uint64_t n = 0;
        if (t == DType::f32) {
          auto s = span_of<float>(data);
          py::gil_scoped_release nogil;
          n = reduce::zero_below(s, static_cast<float>(threshold), threads);
        } else if (t == DType::u16 || t == DType::u32) {
          if (threshold < 0) return std::uint64_t{0};
          const double cap = t == DType::u16 ? 65536.0 : 4294967296.0;
          if (threshold >= cap) threshold = cap;  // everything below: zero it all
          n = t == DType::u16 ? zero_below_counts(span_of<std::uint16_t>(data), threshold, threads)
                              : zero_below_counts(span_of<std::uint32_t>(data), threshold, threads);
        } else {
          throw ValueError("zero_below: data must be float32, uint16 or uint32, got " +
                           std::string(dtype_name(t)));
        }
        return n;
      }, py::arg("data"), py::arg("threshold"), py::arg("threads") = 0,
      "In place: values below threshold become 0; returns how many.");

  m.def("crop", [](const py::array& in, const py::array& out, std::size_t r0, std::size_t r1, std::size_t c0,
                   std::size_t c1, int threads) {
        require_contiguous(in, "crop: data");
        writable_bytes(out, "crop: out");
        if (dtype_of(in) != dtype_of(out)) throw ValueError("crop: out dtype differs from the data's");
        const auto s = stack_of(in, "crop: data");
        std::span<const std::byte> i(static_cast<const std::byte*>(in.data()), static_cast<std::size_t>(in.nbytes()));
        std::span<std::byte> o(static_cast<std::byte*>(const_cast<void*>(out.data())), static_cast<std::size_t>(out.nbytes()));
        const auto elem = static_cast<std::size_t>(in.itemsize());
        py::gil_scoped_release nogil;
        reduce::crop(i, o, elem, s, r0, r1, c0, c1, threads);
      }, py::arg("data"), py::arg("out"), py::arg("r0"), py::arg("r1"), py::arg("c0"), py::arg("c1"),
      py::arg("threads") = 0);

  m.def("bin", [](const py::array& in, const py::array& out, std::size_t by, std::size_t bx, int threads) {
        require_contiguous(in, "bin: data");
        writable_bytes(out, "bin: out");
        const auto s = stack_of(in, "bin: data");
        const DType it = dtype_of(in), ot = dtype_of(out);
        if (it == DType::f32 && ot == DType::f32) {
          auto i = span_of<const float>(in);
          auto o = span_of<float>(out);
          py::gil_scoped_release nogil;
          reduce::bin(i, o, s, by, bx, threads);
        } else if (it == DType::u16 && ot == DType::u32) {
          auto i = span_of<const std::uint16_t>(in);
          auto o = span_of<std::uint32_t>(out);
          py::gil_scoped_release nogil;
          reduce::bin(i, o, s, by, bx, threads);
        } else if (it == DType::u32 && ot == DType::u32) {
          auto i = span_of<const std::uint32_t>(in);
          auto o = span_of<std::uint32_t>(out);
          py::gil_scoped_release nogil;
          reduce::bin(i, o, s, by, bx, threads);
        } else {
          throw ValueError("bin: float32 -> float32 or uint16/uint32 -> uint32 only, got " +
                           std::string(dtype_name(it)) + " -> " + std::string(dtype_name(ot)));
        }
      }, py::arg("data"), py::arg("out"), py::arg("by"), py::arg("bx"), py::arg("threads") = 0);
}
