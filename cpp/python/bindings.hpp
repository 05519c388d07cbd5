#pragma once
// Each bind_*.cpp registers itself with LCLSTREAM_BINDING(name) { ... } so that adding a
// concept never touches a shared file. module.cpp sets up exceptions first, then runs the
// registered binders in name order.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "lclstream/dtype.hpp"

namespace lclstream::py_bind {

namespace py = pybind11;
using Binder = void (*)(py::module_&);

std::map<std::string, Binder>& registry();

struct Registrar {
  Registrar(const char* name, Binder fn) { registry()[name] = fn; }
};

/// numpy dtype -> DType (ValueError for anything else, e.g. big-endian or object arrays).
DType dtype_of(const py::array& a);
/// DType -> numpy dtype.
py::dtype numpy_dtype(DType t);
/// Requires a C-contiguous array (no silent copies on the hot path); names `what` on error.
void require_contiguous(const py::array& a, const char* what);
/// Requires a C-contiguous, writeable array and returns its bytes; names `what` on error.
std::span<std::byte> writable_bytes(const py::array& a, const char* what);

/// A 1-D numpy copy of a kernel's result vector.
template <class T>
py::array_t<T> to_numpy(const std::vector<T>& v) {
  py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
  return a;
}

}  // namespace lclstream::py_bind

#define LCLSTREAM_BINDING(name)                                                         \
  static void lclstream_bind_##name(::lclstream::py_bind::py::module_& m);             \
  static const ::lclstream::py_bind::Registrar lclstream_registrar_##name(#name,         \
                                                                          &lclstream_bind_##name); \
  static void lclstream_bind_##name(::lclstream::py_bind::py::module_& m)
