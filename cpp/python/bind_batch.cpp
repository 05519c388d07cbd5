// BufferPool and Batch: numpy views over pooled memory, no copies. A view's base is the
// Python Batch object, so the pooled buffer goes back only when the last view is gone.
#include <memory>
#include <sstream>

#include "bindings.hpp"
#include "lclstream/batch.hpp"
#include "lclstream/buffer_pool.hpp"
#include "lclstream/error.hpp"

namespace lclstream::py_bind {
namespace {

void check_frame_shape(const Batch& b, const py::array& a, std::size_t skip) {
  const auto& fs = b.frame_shape();
  bool ok = static_cast<std::size_t>(a.ndim()) == fs.size() + skip;
  for (std::size_t i = 0; ok && i < fs.size(); ++i) ok = static_cast<std::size_t>(a.shape(i + skip)) == fs[i];
  if (!ok) {
    std::ostringstream msg;
    msg << "Batch: frame shape (";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) msg << (i ? ", " : "") << a.shape(i);
    msg << ") does not match the batch's frame shape (";
    for (std::size_t i = 0; i < fs.size(); ++i) msg << (i ? ", " : "") << fs[i];
    msg << ")";
    throw ValueError(msg.str());
  }
}

// The one check every way of adding frames goes through: C-contiguous (no silent copy),
// the batch's dtype, and its frame shape (after `skip` leading stack dimensions).
std::span<const std::byte> checked_bytes(const Batch& b, const py::array& a, const char* what,
                                         std::size_t skip) {
  require_contiguous(a, what);
  const DType t = dtype_of(a);
  if (t != b.dtype()) {
    throw ValueError(std::string(what) + " dtype " + std::string(dtype_name(t)) +
                     " does not match the batch's " + std::string(dtype_name(b.dtype())));
  }
  check_frame_shape(b, a, skip);
  return {static_cast<const std::byte*>(a.data()), static_cast<std::size_t>(a.nbytes())};
}

py::array view_of(const std::shared_ptr<Batch>& b, std::span<std::byte> bytes,
                  std::vector<py::ssize_t> shape) {
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t s = static_cast<py::ssize_t>(dtype_size(b->dtype()));
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i];
  }
  return py::array(numpy_dtype(b->dtype()), shape, strides, bytes.data(), py::cast(b));
}

}  // namespace
}  // namespace lclstream::py_bind

using namespace lclstream;
using namespace lclstream::py_bind;

LCLSTREAM_BINDING(batch) {
  py::class_<BufferPool, std::shared_ptr<BufferPool>>(m, "BufferPool",
      "Page-aligned buffers touched once and reused; acquire blocks when all are in use.")
      .def(py::init<std::size_t, std::size_t, bool>(), py::arg("buffer_bytes"), py::arg("count"),
           py::arg("prefault") = true)
      .def("cancel", &BufferPool::cancel,
           "Wake every waiter with CancelledError and refuse later acquisitions (a stalled "
           "consumer holds the buffers; the run is being cancelled).")
      .def_property_readonly("cancelled", &BufferPool::cancelled)
      .def_property_readonly("buffer_bytes", &BufferPool::buffer_bytes)
      .def_property_readonly("capacity", &BufferPool::capacity)
      .def("stats", [](const BufferPool& p) {
        auto s = p.stats();
        py::dict d;
        d["buffer_bytes"] = s.buffer_bytes;
        d["capacity"] = s.capacity;
        d["allocated"] = s.allocated;
        d["available"] = s.available;
        d["acquires"] = s.acquires;
        d["waits"] = s.waits;
        return d;
      });

  py::class_<Batch, std::shared_ptr<Batch>>(m, "Batch",
      "N frames of one detector in one contiguous pooled buffer, events first.")
      .def(py::init([](std::shared_ptr<BufferPool> pool, const std::string& dtype,
                       std::vector<std::size_t> frame_shape, std::size_t capacity, std::optional<double> timeout) {
             const DType t = dtype_from_name(dtype);
             std::shared_ptr<Batch> b;
             if (pool) {
               std::optional<std::chrono::milliseconds> deadline;
               if (timeout) {
                 if (*timeout < 0) throw ValueError("Batch: timeout must be >= 0 seconds or None");
                 deadline = std::chrono::milliseconds(static_cast<long long>(*timeout * 1000.0 + 0.5));
               }
               // acquire may block until a buffer comes back: without the GIL, checking for
               // Ctrl-C between slices (the main thread's), ended at once by pool.cancel().
               py::gil_scoped_release nogil;
               b = std::make_shared<Batch>(*pool, t, std::move(frame_shape), capacity, deadline, [] {
                 py::gil_scoped_acquire gil;
                 if (PyErr_CheckSignals() != 0) throw py::error_already_set();
               });
             } else {
               b = std::make_shared<Batch>(t, std::move(frame_shape), capacity);
             }
             return b;
           }),
           py::arg("pool"), py::arg("dtype"), py::arg("frame_shape"), py::arg("capacity"),
           py::arg("timeout") = py::none())
      .def("append", [](Batch& b, const py::array& frame, std::uint64_t id, std::uint64_t ts, int threads) {
             const auto bytes = checked_bytes(b, frame, "Batch.append: frame", 0);
             py::gil_scoped_release nogil;
             b.append(bytes, b.dtype(), id, ts, threads);
           },
           py::arg("frame"), py::arg("event_id"), py::arg("timestamp"), py::arg("threads") = 1)
      .def("extend", [](Batch& b, const py::list& frames, const std::vector<std::uint64_t>& ids,
                        const std::vector<std::uint64_t>& ts, int threads) {
             std::vector<py::array> keep;
             std::vector<std::span<const std::byte>> views;
             keep.reserve(frames.size());
             for (auto item : frames) {
               if (!py::isinstance<py::array>(item)) throw ValueError("Batch.extend: frames must be numpy arrays");
               py::array a = py::reinterpret_borrow<py::array>(item);
               views.push_back(checked_bytes(b, a, "Batch.extend: frame", 0));
               keep.push_back(std::move(a));
             }
             py::gil_scoped_release nogil;
             b.append_many(views, b.dtype(), ids, ts, threads);
           },
           py::arg("frames"), py::arg("event_ids"), py::arg("timestamps"), py::arg("threads") = 0)
      .def("extend_stacked", [](Batch& b, const py::array& frames, const std::vector<std::uint64_t>& ids,
                                const std::vector<std::uint64_t>& ts, int threads) {
             (void)checked_bytes(b, frames, "Batch.extend_stacked: frames", 1);
             const std::size_t n = static_cast<std::size_t>(frames.shape(0));
             const auto* base = static_cast<const std::byte*>(frames.data());
             std::vector<std::span<const std::byte>> views;
             for (std::size_t i = 0; i < n; ++i) views.emplace_back(base + i * b.frame_bytes(), b.frame_bytes());
             py::gil_scoped_release nogil;
             b.append_many(views, b.dtype(), ids, ts, threads);
           },
           py::arg("frames"), py::arg("event_ids"), py::arg("timestamps"), py::arg("threads") = 0)
      .def("next_slot", [](const std::shared_ptr<Batch>& b) {
             auto slot = b->next_slot();
             std::vector<py::ssize_t> shape(b->frame_shape().begin(), b->frame_shape().end());
             return view_of(b, slot, shape);
           }, "A writable view of the next frame's place; commit() makes it part of the batch.")
      .def("commit", &Batch::commit_next, py::arg("event_id"), py::arg("timestamp"))
      .def("clear", &Batch::clear)
      .def("array", [](const std::shared_ptr<Batch>& b) {
             std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(b->size())};
             shape.insert(shape.end(), b->frame_shape().begin(), b->frame_shape().end());
             return view_of(b, b->bytes(), shape);
           }, "The filled frames as one numpy array viewing the pooled buffer (no copy).")
      .def("release", [](Batch& b) { b.release(); }, "Give the buffer back to the pool now.")
      .def_property_readonly("dtype", [](const Batch& b) { return std::string(dtype_name(b.dtype())); })
      .def_property_readonly("frame_shape", [](const Batch& b) {
        py::tuple t(b.frame_shape().size());
        for (std::size_t i = 0; i < b.frame_shape().size(); ++i) t[i] = b.frame_shape()[i];
        return t;
      })
      .def_property_readonly("capacity", &Batch::capacity)
      .def_property_readonly("frame_bytes", &Batch::frame_bytes)
      .def_property_readonly("event_ids", [](const Batch& b) {
        return py::array_t<std::uint64_t>(static_cast<py::ssize_t>(b.size()), b.event_ids().data());
      })
      .def_property_readonly("timestamps", [](const Batch& b) {
        return py::array_t<std::uint64_t>(static_cast<py::ssize_t>(b.size()), b.timestamps().data());
      })
      .def("__len__", &Batch::size);

  m.def("parallel_copy", [](const py::array& dst, const py::array& src, int threads) {
        require_contiguous(dst, "parallel_copy: dst");
        require_contiguous(src, "parallel_copy: src");
        const std::span<std::byte> d = writable_bytes(dst, "parallel_copy: dst");
        std::span<const std::byte> s(static_cast<const std::byte*>(src.data()), static_cast<std::size_t>(src.nbytes()));
        py::gil_scoped_release nogil;
        parallel_copy(d, s, threads);
      }, py::arg("dst"), py::arg("src"), py::arg("threads") = 0,
      "memcpy over threads: the benchmark baseline for batch assembly.");
}
