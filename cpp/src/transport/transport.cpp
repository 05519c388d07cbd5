// Names, keys, contexts and the Sender façade (see transport.hpp for the guarantees).
//
// Where each guarantee lives: the send strategies (send_strategy.hpp: PushConnect,
// PushBind, Publisher) carry the per-arrangement send and broadcast rules; this file
// serialises calls and runs close() and the destructor, which are the same for all;
// receiver.cpp is the Receiver; frames_out.cpp the zero-copy hand-off and its Tracker;
// socket_setup.cpp the options and CURVE allow-lists; peer_monitor.cpp the peer count.
#include "lclstream/transport.hpp"

#include <zmq.h>

#include <cstdlib>
#include <mutex>
#include <utility>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "lclstream/error.hpp"
#include "transport/send_strategy.hpp"
#include "transport/socket.hpp"

namespace lclstream {
using namespace transport_detail;

// ---- names, keys, context ---------------------------------------------------------------

SocketType socket_type_from_name(std::string_view name) {
  if (name == "push") return SocketType::push;
  if (name == "pull") return SocketType::pull;
  if (name == "pub") return SocketType::pub;
  if (name == "sub") return SocketType::sub;
  throw ValueError("unknown socket type '" + std::string(name) + "' (allowed: push, pull, pub, sub)");
}

std::string_view socket_type_name(SocketType t) noexcept {
  switch (t) {
    case SocketType::push: return "push";
    case SocketType::pull: return "pull";
    case SocketType::pub: return "pub";
    case SocketType::sub: return "sub";
  }
  return "push";
}

bool has_curve() noexcept { return zmq_has("curve") != 0; }

CurveKeyPair curve_keypair() {
  char pub[41] = {};
  char sec[41] = {};
  if (zmq_curve_keypair(pub, sec) != 0) throw TransportError(zerr("zmq_curve_keypair"));
  return {std::string(pub, 40), std::string(sec, 40)};
}

bool reuse_message_buffers() {
  static const bool in_effect = [] {
    const char* env = std::getenv("LCLSTREAM_MALLOC_TUNING");
    if (env != nullptr && std::string_view(env) == "0") return false;
#if defined(__GLIBC__)
    // Large blocks from the heaps (arenas), not from mmap; freed memory kept for reuse.
    // The top pad keeps a non-main arena's emptied heaps (glibc deletes such a heap only
    // when the pad fits in the heap before it; 64 MiB, a heap's most, never does).
    // Blocks beyond an arena's reach still fall back to mmap inside glibc.
    const bool ok = mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 &&
                    mallopt(M_TOP_PAD, 64 << 20) == 1;
    return ok;
#else
    return false;
#endif
  }();
  return in_effect;
}

Context::Context(int io_threads) : ctx_(zmq_ctx_new()) {
  if (ctx_ == nullptr) throw TransportError(zerr("zmq_ctx_new"));
  zmq_ctx_set(ctx_, ZMQ_IO_THREADS, io_threads);
}

Context::~Context() {
  zap_.reset();  // stops the ZAP thread and closes its socket before the context ends
  if (owned_ && ctx_ != nullptr) zmq_ctx_term(ctx_);
}

std::shared_ptr<Context> Context::global() {
  // Never terminated: zmq_ctx_term at exit would wait for sockets a garbage-collected
  // language may never close.
  static const std::shared_ptr<Context> g = [] {
    void* c = zmq_ctx_new();
    if (c == nullptr) throw TransportError(zerr("zmq_ctx_new"));
    return std::shared_ptr<Context>(new Context(Global{}, c));  // private constructor
  }();
  return g;
}

// ---- Sender -----------------------------------------------------------------------------

struct Sender::Impl {
  SenderCore core;
  std::unique_ptr<SendStrategy> strategy;
  // Threads: one thread sends at a time (sock_mu); stats() may run on any thread and
  // close() may come from another thread (it makes a blocked send give up).
  std::mutex sock_mu;   // the strategy and its sockets
  std::mutex close_mu;  // one close at a time
  std::atomic<std::uint64_t> peers_cache{0};
  std::atomic<bool> is_closed{false};
  std::atomic<std::size_t> undelivered{0};
};

Sender::Sender(std::vector<std::string> endpoints, TransportOptions options) : impl_(std::make_unique<Impl>()) {
  SenderCore& c = impl_->core;
  c.opt = std::move(options);
  c.ctx = c.opt.context ? c.opt.context : Context::global();
  const SocketType t = c.opt.socket_type;
  if (t != SocketType::push && t != SocketType::pub) {
    throw ValueError("Sender: socket type must be push or pub, not " + std::string(socket_type_name(t)));
  }
  if (endpoints.empty()) throw ValueError("Sender: no endpoint given");
  if (c.opt.hwm < 0) throw ValueError("Sender: hwm must be >= 0");
  if (t == SocketType::pub) {
    impl_->strategy = make_publisher(c, endpoints);
  } else if (c.opt.bind) {
    impl_->strategy = make_push_bind(c, endpoints);
  } else {
    impl_->strategy = make_push_connect(c, endpoints);
  }
}

Sender::~Sender() {
  try {
    impl_->core.opt.interrupt = nullptr;  // a destructor must not throw on Ctrl-C
    // Bounded whatever the timeout (nullopt included): a destructor (a Python finalizer, a
    // stack unwinding) must not wait forever for a consumer that stopped reading.
    const auto t = impl_->core.opt.timeout;
    close(t && *t < kDestructorLinger ? *t : kDestructorLinger);
  } catch (...) {  // NOLINT: best effort; close() reports through its return value
  }
}

bool Sender::send(std::span<const OutFrame> frames) {
  Impl& im = *impl_;
  std::lock_guard<std::mutex> lock(im.sock_mu);
  if (im.is_closed || im.core.closing) {
    throw TransportError("send on a closed Sender (" + join(im.core.endpoints) + ")");
  }
  if (frames.empty()) throw ValueError("send: a message needs at least one frame");
  return im.strategy->send(frames);
}

std::size_t Sender::broadcast(std::span<const OutFrame> frames) {
  Impl& im = *impl_;
  std::lock_guard<std::mutex> lock(im.sock_mu);
  if (im.is_closed || im.core.closing) {
    throw TransportError("broadcast on a closed Sender (" + join(im.core.endpoints) + ")");
  }
  if (frames.empty()) throw ValueError("broadcast: a message needs at least one frame");
  {
    std::lock_guard<std::mutex> st_lock(im.core.st_mu);
    ++im.core.st.broadcasts;
  }
  return im.strategy->broadcast(frames);
}

std::size_t Sender::close(std::optional<milliseconds> timeout) {
  Impl& im = *impl_;
  SenderCore& c = im.core;
  std::lock_guard<std::mutex> close_lock(im.close_mu);
  if (im.is_closed) return im.undelivered;
  c.closing = true;  // a send blocked on another thread gives up at its next slice
  const auto deadline = deadline_of(timeout ? timeout : c.opt.timeout);
  {
    std::unique_lock<std::mutex> lock(c.tracker->mu);
    for (;;) {
      if (c.tracker->in_flight.load(std::memory_order_acquire) == 0) break;
      const long wait = slice_ms(deadline, c.opt.slice);
      if (wait < 0) break;
      c.tracker->cv.wait_for(lock, milliseconds(wait));
      if (c.opt.interrupt) {
        lock.unlock();
        c.opt.interrupt();
        lock.lock();
      }
    }
  }
  im.undelivered = static_cast<std::size_t>(c.tracker->in_flight.load(std::memory_order_acquire));
  std::lock_guard<std::mutex> lock(im.sock_mu);
  im.strategy->close_sockets();  // what is left is discarded (and its owners released)
  im.is_closed = true;
  return im.undelivered;
}

SenderStats Sender::stats() const {
  Impl& im = *impl_;
  SenderStats s;
  {
    std::lock_guard<std::mutex> lock(im.core.st_mu);
    s = im.core.st;
  }
  s.in_flight = im.core.tracker->in_flight.load(std::memory_order_acquire);
  // Refresh the peer count only when no send holds the sockets (else: the last value).
  std::unique_lock<std::mutex> lock(im.sock_mu, std::try_to_lock);
  if (lock.owns_lock() && !im.is_closed) im.peers_cache = im.strategy->peers();
  s.peers = im.peers_cache;
  return s;
}

const std::vector<std::string>& Sender::endpoints() const noexcept { return impl_->core.endpoints; }
bool Sender::closed() const noexcept { return impl_->is_closed; }
bool Sender::curve_server() const noexcept { return impl_->core.opt.curve && impl_->core.opt.curve->server; }
bool Sender::curve_allow_list_set() const noexcept {
  return curve_server() && !impl_->core.opt.curve->allowed_clients.empty();
}

}  // namespace lclstream
