#include <Python.h>

#include "bindings.hpp"
#include "lclstream/error.hpp"
#include "lclstream/isa.hpp"
#include "lclstream/parallel.hpp"
#include "lclstream/version.hpp"

namespace lclstream::py_bind {

std::map<std::string, Binder>& registry() {
  static std::map<std::string, Binder> r;
  return r;
}

DType dtype_of(const py::array& a) {
  const py::dtype dt = a.dtype();
  if (dt.byteorder() == '>') throw ValueError("big-endian arrays are not supported; use .astype('<...')");
  const char kind = dt.kind();
  if (kind != 'u' && kind != 'i' && kind != 'f') {
    throw ValueError("unsupported array dtype '" + std::string(py::str(dt)) + "'");
  }
  return dtype_from_name(std::string(1, kind) + std::to_string(dt.itemsize()));
}

py::dtype numpy_dtype(DType t) { return py::dtype(std::string(dtype_name(t))); }

void require_contiguous(const py::array& a, const char* what) {
  if (!(a.flags() & py::array::c_style)) {
    throw ValueError(std::string(what) + " must be a C-contiguous array (use numpy.ascontiguousarray)");
  }
}

std::span<std::byte> writable_bytes(const py::array& a, const char* what) {
  require_contiguous(a, what);
  if (!a.writeable()) throw ValueError(std::string(what) + " is read-only");
  return {static_cast<std::byte*>(const_cast<void*>(a.data())), static_cast<std::size_t>(a.nbytes())};
}

namespace {
// Creates `lclstream._core.<name>` deriving from the given Python classes.
py::object make_exception(py::module_& m, const char* name, py::tuple bases, const char* doc) {
  const std::string qual = std::string("lclstream._core.") + name;
  PyObject* t = PyErr_NewExceptionWithDoc(qual.c_str(), doc, bases.ptr(), nullptr);
  if (t == nullptr) throw py::error_already_set();
  py::object obj = py::reinterpret_steal<py::object>(t);
  m.attr(name) = obj;
  return obj;
}
}  // namespace

}  // namespace lclstream::py_bind

namespace py = pybind11;
using namespace lclstream::py_bind;

PYBIND11_MODULE(_core, m) {
  m.doc() = "lclstream C++ core: batches, calibration kernels, codecs, ZeroMQ transport";
  m.attr("__version__") = std::string(lclstream::version());

  // Exception hierarchy: every core error is an LclstreamError and also the builtin that
  // callers would naturally catch (ValueError, TimeoutError, ...).
  static py::object base = make_exception(m, "LclstreamError", py::make_tuple(py::handle(PyExc_Exception)),
                                          "Base class of lclstream errors.");
  static py::object value = make_exception(m, "LclstreamValueError", py::make_tuple(base, py::handle(PyExc_ValueError)),
                                           "Wrong dtype, shape, size or value.");
  static py::object capacity = make_exception(m, "CapacityError", py::make_tuple(base, py::handle(PyExc_ValueError)),
                                              "A fixed-capacity batch, pool or buffer is full.");
  static py::object corrupt = make_exception(m, "CorruptDataError", py::make_tuple(base, py::handle(PyExc_ValueError)),
                                             "Truncated or corrupt input bytes.");
  static py::object timeout = make_exception(m, "LclstreamTimeoutError", py::make_tuple(base, py::handle(PyExc_TimeoutError)),
                                             "A blocking operation ran past its deadline.");
  static py::object transport = make_exception(m, "TransportError", py::make_tuple(base, py::handle(PyExc_ConnectionError)),
                                               "A socket or endpoint failed.");
  static py::object cancelled = make_exception(m, "CancelledError", py::make_tuple(base),
                                               "A wait was given up because its owner was cancelled (BufferPool.cancel).");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const lclstream::CapacityError& e) {
      PyErr_SetString(capacity.ptr(), e.what());
    } catch (const lclstream::CorruptDataError& e) {
      PyErr_SetString(corrupt.ptr(), e.what());
    } catch (const lclstream::ValueError& e) {
      PyErr_SetString(value.ptr(), e.what());
    } catch (const lclstream::TimeoutError& e) {
      PyErr_SetString(timeout.ptr(), e.what());
    } catch (const lclstream::TransportError& e) {
      PyErr_SetString(transport.ptr(), e.what());
    } catch (const lclstream::CancelledError& e) {
      PyErr_SetString(cancelled.ptr(), e.what());
    } catch (const lclstream::InterruptedError&) {
      PyErr_SetNone(PyExc_KeyboardInterrupt);
    } catch (const lclstream::Error& e) {
      PyErr_SetString(base.ptr(), e.what());
    }
  });

  m.def("available_isas", [] {
    std::vector<std::string> out;
    for (auto i : lclstream::available_isas()) out.emplace_back(lclstream::isa_name(i));
    return out;
  }, "Instruction-set implementations this CPU can run, best first.");
  m.def("isa", [] { return std::string(lclstream::isa_name(lclstream::active_isa())); },
        "The implementation the kernels use now.");
  m.def("set_isa", [](const std::string& name) { lclstream::set_isa(lclstream::isa_from_name(name)); },
        py::arg("name"), "Force an implementation (tests and benchmarks).");
  m.def("hardware_threads", &lclstream::hardware_threads);

  for (auto& [name, fn] : registry()) fn(m);  // all concepts share the flat _core namespace
}
