// Transport: zero-copy Sender / Receiver. Python owners of sent bytes are kept alive
// until libzmq is done with them; the libzmq free callback (maybe on an I/O thread, never
// holding the GIL) only queues the owner, and the queue is drained on a Python thread by
// the next send / recv / stats / close. Every blocking call releases the GIL and checks
// for signals (Ctrl-C) between short slices.
#include <Python.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>

#include "bindings.hpp"
#include "lclstream/error.hpp"
#include "lclstream/transport.hpp"

namespace lclstream::py_bind {
namespace {

using std::chrono::milliseconds;

/// A Python buffer export kept alive while libzmq uses its bytes.
struct PyOwner {
  Py_buffer view{};
};

/// Owners that libzmq has finished with, waiting for a thread that holds the GIL.
struct ReleaseQueue {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::unique_ptr<PyOwner>> done;
  bool stop = false;
};

ReleaseQueue& release_queue() {
  // Deliberately never destroyed: a libzmq I/O thread may still hand back owners while
  // the interpreter shuts down.
  static ReleaseQueue* q = new ReleaseQueue();  // NOLINT(cppcoreguidelines-owning-memory)
  return *q;
}

/// Releases finished owners; the caller holds the GIL.
std::size_t drain_released() {
  std::vector<std::unique_ptr<PyOwner>> batch;
  {
    auto& q = release_queue();
    std::lock_guard<std::mutex> lock(q.mu);
    batch.swap(q.done);
  }
  for (auto& o : batch) PyBuffer_Release(&o->view);
  return batch.size();
}

/// OutFrames over the buffers of `frames` (any buffer-protocol objects), no copy.
std::vector<OutFrame> out_frames(const py::sequence& frames, const char* what) {
  std::vector<OutFrame> out;
  out.reserve(frames.size());
  std::size_t i = 0;
  for (auto item : frames) {
    auto owner = std::make_unique<PyOwner>();
    if (PyObject_GetBuffer(item.ptr(), &owner->view, PyBUF_ANY_CONTIGUOUS) != 0) {
      PyErr_Clear();
      throw ValueError(std::string(what) + ": frame " + std::to_string(i) + " (" +
                       std::string(py::str(py::type::of(item).attr("__name__"))) +
                       ") is not a contiguous buffer (bytes, memoryview, numpy array...)");
    }
    std::span<const std::byte> bytes(static_cast<const std::byte*>(owner->view.buf),
                                     static_cast<std::size_t>(owner->view.len));
    std::shared_ptr<const void> keep(owner.release(), [](const PyOwner* p) {
      auto& q = release_queue();
      std::lock_guard<std::mutex> lock(q.mu);
      q.done.emplace_back(const_cast<PyOwner*>(p));
    });
    out.push_back(OutFrame{bytes, std::move(keep)});
    ++i;
  }
  return out;
}

std::optional<milliseconds> to_ms(std::optional<double> seconds) {
  if (!seconds) return std::nullopt;
  if (*seconds < 0) throw ValueError("timeout must be >= 0 seconds or None");
  return milliseconds(static_cast<long long>(*seconds * 1000.0 + 0.5));
}

InterruptCheck python_interrupt() {
  return [] {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  };
}

TransportOptions make_options(const std::string& socket_type, bool bind, int hwm, std::optional<double> timeout,
                              const std::optional<py::dict>& curve, int sndbuf, int rcvbuf,
                              const std::vector<std::string>& subscribe) {
  TransportOptions o;
  o.socket_type = socket_type_from_name(socket_type);
  o.bind = bind;
  o.hwm = hwm;
  o.timeout = to_ms(timeout);
  o.sndbuf = sndbuf;
  o.rcvbuf = rcvbuf;
  o.subscribe = subscribe;
  o.interrupt = python_interrupt();
  if (curve) {
    CurveOptions c;
    const py::dict& d = *curve;
    c.server = d.contains("server") && py::bool_(d["server"]);
    c.keys.public_key = d.contains("public_key") ? py::str(d["public_key"]) : py::str("");
    c.keys.secret_key = d.contains("secret_key") ? py::str(d["secret_key"]) : py::str("");
    if (d.contains("server_key") && !d["server_key"].is_none()) c.server_public_key = py::str(d["server_key"]);
    if (d.contains("allowed_clients") && !d["allowed_clients"].is_none()) {
      c.allowed_clients = d["allowed_clients"].cast<std::vector<std::string>>();
    }
    if (c.keys.secret_key.size() != 40) throw ValueError("curve: secret_key must be 40 Z85 characters");
    o.curve = std::move(c);
  }
  return o;
}

py::dict sender_stats(const Sender& s) {
  const SenderStats st = s.stats();
  py::dict d;
  d["messages"] = st.messages;
  d["bytes"] = st.bytes;
  d["dropped"] = st.dropped;
  d["broadcasts"] = st.broadcasts;
  d["in_flight"] = st.in_flight;
  d["peers"] = st.peers;
  d["blocked_seconds"] = static_cast<double>(st.blocked_ns) * 1e-9;
  return d;
}

}  // namespace
}  // namespace lclstream::py_bind

using namespace lclstream;
using namespace lclstream::py_bind;

LCLSTREAM_BINDING(transport) {
  m.def("curve_available", &has_curve, "True when libzmq was built with CurveZMQ (zmq_has('curve')).");
  m.def("curve_keypair", [] {
        auto k = curve_keypair();
        return py::make_tuple(k.public_key, k.secret_key);
      }, "A fresh CurveZMQ key pair (public, secret) as Z85 text.");
  m.def("reuse_message_buffers", &reuse_message_buffers,
        "Make glibc serve large blocks from its heap and keep freed memory (process-wide; "
        "LCLSTREAM_MALLOC_TUNING=0 vetoes it). Returns whether it is in effect.");
  m.def("transport_drain", [] { return drain_released(); },
        "Release Python owners whose bytes libzmq has finished with (returns how many).");
  m.def("transport_release_loop", [] {
        // Run by a Python daemon thread (lclstream.transport): every 10 ms it releases the
        // owners libzmq handed back, so a pooled buffer returns to its pool even while every
        // other thread is blocked (e.g. waiting on that very pool). It is not woken per
        // message: while a stream runs, send()/recv() drain the queue themselves and this
        // thread finds it empty without taking the GIL.
        auto& q = release_queue();
        for (;;) {
          bool stop = false;
          bool pending = false;
          {
            py::gil_scoped_release nogil;
            std::unique_lock<std::mutex> lock(q.mu);
            q.cv.wait_for(lock, std::chrono::milliseconds(10), [&q] { return q.stop; });
            stop = q.stop;
            pending = !q.done.empty();
          }
          if (pending || stop) drain_released();
          if (stop) return;
        }
      }, "Release owners until transport_release_stop() (run on a Python thread).");
  m.def("transport_release_stop", [] {
        auto& q = release_queue();
        {
          std::lock_guard<std::mutex> lock(q.mu);
          q.stop = true;
        }
        q.cv.notify_all();
      });

  py::class_<Frame>(m, "Frame", py::buffer_protocol(),
                    "One received frame: a read-only buffer over libzmq's message, no copy.")
      .def_buffer([](Frame& f) {
        auto b = f.bytes();
        return py::buffer_info(const_cast<std::byte*>(b.data()), 1, "B", 1,
                               {static_cast<py::ssize_t>(b.size())}, {py::ssize_t{1}}, /*readonly=*/true);
      })
      .def_property_readonly("nbytes", &Frame::size)
      .def_property_readonly("address", [](const Frame& f) { return reinterpret_cast<std::uintptr_t>(f.bytes().data()); },
                             "Address of the first byte (zero-copy checks).")
      .def("__len__", &Frame::size);

  py::class_<Sender>(m, "Sender", "Zero-copy ZeroMQ sender (push or pub); see lclstream.transport.Sender.")
      .def(py::init([](std::vector<std::string> endpoints, const std::string& socket_type, bool bind, int hwm,
                       std::optional<double> timeout, std::optional<py::dict> curve, int sndbuf) {
             auto o = make_options(socket_type, bind, hwm, timeout, curve, sndbuf, 0, {});
             return std::make_unique<Sender>(std::move(endpoints), std::move(o));
           }),
           py::arg("endpoints"), py::arg("socket_type") = "push", py::arg("bind") = false, py::arg("hwm") = 16,
           py::arg("timeout") = 30.0, py::arg("curve") = py::none(), py::arg("sndbuf") = 0)
      .def("send", [](Sender& s, const py::sequence& frames) {
             drain_released();
             auto out = out_frames(frames, "send");
             py::gil_scoped_release nogil;
             return s.send(out);
           }, py::arg("frames"))
      .def("broadcast", [](Sender& s, const py::sequence& frames) {
             drain_released();
             auto out = out_frames(frames, "broadcast");
             py::gil_scoped_release nogil;
             return s.broadcast(out);
           }, py::arg("frames"))
      .def("close", [](Sender& s, std::optional<double> timeout) {
             std::size_t n = 0;
             {
               py::gil_scoped_release nogil;
               n = timeout ? s.close(to_ms(timeout)) : s.close();
             }
             drain_released();
             return n;
           }, py::arg("timeout") = py::none())
      .def("stats", [](const Sender& s) {
             drain_released();
             return sender_stats(s);
           })
      .def_property_readonly("endpoints", &Sender::endpoints)
      .def_property_readonly("closed", &Sender::closed)
      .def_property_readonly("curve_server", &Sender::curve_server)
      .def_property_readonly("curve_allow_list_set", &Sender::curve_allow_list_set,
                             "A CURVE server that checks client keys (False: any client gets in).");
  m.attr("DESTRUCTOR_LINGER_S") = static_cast<double>(kDestructorLinger.count()) / 1000.0;

  py::class_<Receiver>(m, "Receiver", "ZeroMQ receiver (pull or sub); see lclstream.transport.Receiver.")
      .def(py::init([](std::vector<std::string> endpoints, const std::string& socket_type, bool bind, int hwm,
                       std::optional<double> timeout, std::optional<py::dict> curve, int rcvbuf,
                       std::vector<std::string> subscribe, bool reuse_buffers) {
             auto o = make_options(socket_type, bind, hwm, timeout, curve, 0, rcvbuf, subscribe);
             o.reuse_buffers = reuse_buffers;
             return std::make_unique<Receiver>(std::move(endpoints), std::move(o));
           }),
           py::arg("endpoints"), py::arg("socket_type") = "pull", py::arg("bind") = true, py::arg("hwm") = 16,
           py::arg("timeout") = 30.0, py::arg("curve") = py::none(), py::arg("rcvbuf") = 0,
           py::arg("subscribe") = std::vector<std::string>{""}, py::arg("reuse_buffers") = false)
      .def("recv", [](Receiver& r, std::optional<double> timeout, bool use_default) {
             drain_released();
             std::optional<std::vector<Frame>> frames;
             {
               py::gil_scoped_release nogil;
               if (use_default) {
                 frames = r.recv();
               } else {
                 frames = r.try_recv(to_ms(timeout));
                 if (!frames) {
                   std::string eps;
                   for (const auto& e : r.endpoints()) eps += (eps.empty() ? "" : ", ") + e;
                   char t[32];
                   std::snprintf(t, sizeof t, "%g s", *timeout);
                   throw TimeoutError("recv: no message within " + std::string(t) + " on " + eps);
                 }
               }
             }
             return std::move(*frames);
           }, py::arg("timeout") = py::none(), py::arg("use_default") = true,
           "The next message's frames; TimeoutError when none arrives in time.")
      .def("close", &Receiver::close, py::call_guard<py::gil_scoped_release>(),
           "Closes now; a recv waiting on another thread raises TransportError.")
      .def("stats", [](const Receiver& r) {
             auto st = r.stats();
             py::dict d;
             d["messages"] = st.messages;
             d["bytes"] = st.bytes;
             return d;
           })
      .def_property_readonly("endpoints", &Receiver::endpoints)
      .def_property_readonly("closed", &Receiver::closed)
      .def_property_readonly("curve_server", &Receiver::curve_server)
      .def_property_readonly("curve_allow_list_set", &Receiver::curve_allow_list_set,
                             "A CURVE server that checks client keys (False: any client gets in).");
}
