// Sender / Receiver over libzmq's C API (see transport.hpp for the guarantees).
#include "lclstream/transport.hpp"

#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <utility>

#include "lclstream/error.hpp"
#include "transport/peer_monitor.hpp"
#include "transport/socket.hpp"

namespace lclstream {
using namespace transport_detail;
namespace {

/// Counts messages libzmq still holds; the free callback signals close().
struct Tracker {
  std::atomic<std::uint64_t> in_flight{0};
  std::mutex mu;
  std::condition_variable cv;
  void done() {
    if (in_flight.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu);
      cv.notify_all();
    }
  }
};

/// What the free callback releases: the owner of the bytes and, for a message's last
/// frame, the tracker to tell.
struct Hint {
  std::shared_ptr<const void> owner;
  std::shared_ptr<Tracker> tracker;
};

// Runs when libzmq is done with the bytes, on whichever thread that is (often an I/O
// thread): releases the owner first, then tells the tracker, so that a close() that saw
// in_flight reach 0 knows every owner has been released.
extern "C" void lclstream_free_hint(void* /*data*/, void* hint) noexcept {
  std::unique_ptr<Hint> h(static_cast<Hint*>(hint));
  std::shared_ptr<Tracker> t = std::move(h->tracker);
  h.reset();
  if (t) t->done();
}

/// Initialises `m` to send `f` without copying (a null owner gets a private copy).
void init_msg(zmq_msg_t* m, const OutFrame& f, const std::shared_ptr<Tracker>& t) {
  std::shared_ptr<const void> owner = f.owner;
  const std::byte* data = f.bytes.data();
  if (!owner) {
    auto copy = std::make_shared<std::vector<std::byte>>(f.bytes.begin(), f.bytes.end());
    data = copy->data();
    owner = std::move(copy);
  }
  auto hint = std::make_unique<Hint>(Hint{std::move(owner), t});
  if (t) t->in_flight.fetch_add(1, std::memory_order_acq_rel);
  // libzmq never writes through this pointer on the send path.
  if (zmq_msg_init_data(m, const_cast<std::byte*>(data), f.bytes.size(), &lclstream_free_hint, hint.get()) != 0) {
    if (t) t->in_flight.fetch_sub(1, std::memory_order_acq_rel);
    throw TransportError(zerr("zmq_msg_init_data"));
  }
  hint.release();  // NOLINT: owned by libzmq now, freed by lclstream_free_hint
}

/// Sends all frames as one message without waiting. False when the socket cannot take a
/// message now (nothing was sent; the frames' owners are untouched beyond a ref count).
bool send_now(void* sock, std::span<const OutFrame> frames, const std::shared_ptr<Tracker>& t,
              const std::string& where) {
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const bool last = i + 1 == frames.size();
    zmq_msg_t m;
    init_msg(&m, frames[i], last ? t : nullptr);
    if (zmq_msg_send(&m, sock, ZMQ_DONTWAIT | (last ? 0 : ZMQ_SNDMORE)) < 0) {
      const int e = zmq_errno();
      zmq_msg_close(&m);  // a failed send leaves the message ours: this runs the free callback
      if (e == EAGAIN && i == 0) return false;
      throw TransportError(std::string("send to ") + where + ": " + zmq_strerror(e));
    }
  }
  return true;
}

std::atomic<std::uint64_t> g_zap_domain_id{0};

/// ZeroMQ authentication handler (ZAP, RFC 27) for one context: CURVE clients of a
/// socket whose ZAP domain is registered get through only with an allowed public key.
/// Requests for other domains are accepted (their sockets asked for no client check).
class ZapHandler {
 public:
  explicit ZapHandler(void* ctx) : rep_(ctx, ZMQ_REP) {
    rep_.set(ZMQ_LINGER, 0);
    rep_.attach("inproc://zeromq.zap.01", true);
    thread_ = std::thread([this] { run(); });
  }
  ~ZapHandler() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  /// A fresh domain whose clients must hold one of `keys` (Z85 public keys).
  std::string add_domain(const std::vector<std::string>& keys) {
    std::set<std::string> binary;
    for (const auto& k : keys) {
      if (k.size() != 40) throw ValueError("CURVE allowed_clients: '" + k + "' is not a 40-character Z85 public key");
      std::string b(32, '\0');
      if (zmq_z85_decode(reinterpret_cast<std::uint8_t*>(b.data()), k.c_str()) == nullptr) {
        throw ValueError("CURVE allowed_clients: '" + k + "' is not valid Z85");
      }
      binary.insert(std::move(b));
    }
    std::string domain = "lclstream-" + std::to_string(g_zap_domain_id.fetch_add(1));
    std::lock_guard<std::mutex> lock(mu_);
    allowed_[domain] = std::move(binary);
    return domain;
  }

 private:
  void run() {
    while (!stop_) {
      zmq_pollitem_t item{rep_.get(), 0, ZMQ_POLLIN, 0};
      if (zmq_poll(&item, 1, 50) <= 0) continue;
      std::vector<std::string> req;
      for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, rep_.get(), 0) < 0) {
          zmq_msg_close(&m);
          break;
        }
        req.emplace_back(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
        const bool more = zmq_msg_more(&m) != 0;
        zmq_msg_close(&m);
        if (!more) break;
      }
      // version, request id, domain, address, routing id, mechanism, credentials...
      bool ok = req.size() >= 6 && req[0] == "1.0";
      if (ok) {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = allowed_.find(req[2]);
        if (it != allowed_.end()) ok = req[5] == "CURVE" && req.size() >= 7 && it->second.count(req[6]) > 0;
      }
      const std::string parts[] = {"1.0", req.size() > 1 ? req[1] : std::string(), ok ? "200" : "400",
                                   ok ? "OK" : "client key not allowed", "", ""};
      for (std::size_t i = 0; i < 6; ++i) {
        zmq_send(rep_.get(), parts[i].data(), parts[i].size(), i + 1 < 6 ? ZMQ_SNDMORE : 0);
      }
    }
  }

  Socket rep_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<std::string, std::set<std::string>> allowed_;
};

std::mutex g_zap_mu;

}  // namespace

struct ContextAccess {
  static ZapHandler& zap(Context& c) {
    std::lock_guard<std::mutex> lock(g_zap_mu);
    if (!c.zap_) c.zap_ = std::make_shared<ZapHandler>(c.ctx_);
    return *static_cast<ZapHandler*>(c.zap_.get());
  }
};

namespace {

void apply_common(Socket& s, const TransportOptions& o, bool sending, Context& ctx) {
  s.set(sending ? ZMQ_SNDHWM : ZMQ_RCVHWM, o.hwm);
  if (o.sndbuf > 0) s.set(ZMQ_SNDBUF, o.sndbuf);
  if (o.rcvbuf > 0) s.set(ZMQ_RCVBUF, o.rcvbuf);
  if (o.curve) {
    if (!has_curve()) throw TransportError("CurveZMQ requested but this libzmq was built without CURVE");
    const CurveOptions& c = *o.curve;
    if (c.server) {
      if (!c.allowed_clients.empty()) s.set(ZMQ_ZAP_DOMAIN, ContextAccess::zap(ctx).add_domain(c.allowed_clients));
      s.set(ZMQ_CURVE_SERVER, 1);
      s.set(ZMQ_CURVE_SECRETKEY, c.keys.secret_key);
    } else {
      if (c.server_public_key.size() != 40) throw ValueError("CURVE client: server_public_key must be 40 Z85 characters");
      s.set(ZMQ_CURVE_SERVERKEY, c.server_public_key);
      s.set(ZMQ_CURVE_PUBLICKEY, c.keys.public_key);
      s.set(ZMQ_CURVE_SECRETKEY, c.keys.secret_key);
    }
  }
}

int zmq_type(SocketType t) {
  switch (t) {
    case SocketType::push: return ZMQ_PUSH;
    case SocketType::pull: return ZMQ_PULL;
    case SocketType::pub: return ZMQ_PUB;
    case SocketType::sub: return ZMQ_SUB;
  }
  return ZMQ_PUSH;
}



}  // namespace

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
    // Blocks beyond an arena's reach still fall back to mmap inside glibc.
    const bool ok = mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
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
  TransportOptions opt;
  std::shared_ptr<Context> ctx;
  std::vector<Socket> socks;             // push+connect: one per endpoint; else one
  std::vector<std::string> sock_names;   // endpoint(s) of each socket, for messages
  std::vector<std::string> endpoints;
  std::shared_ptr<Tracker> tracker = std::make_shared<Tracker>();
  std::unique_ptr<PeerMonitor> monitor;  // push+bind: connected peers, drained on its own thread
  std::size_t rr = 0;
  std::vector<zmq_pollitem_t> items;
  // Threads: one thread sends at a time (sock_mu); stats() may run on any thread and
  // close() may come from another thread (it makes a blocked send give up).
  std::mutex sock_mu;   // sockets, rr, items, monitor
  std::mutex close_mu;  // one close at a time
  mutable std::mutex st_mu;
  SenderStats st;       // guarded by st_mu
  std::atomic<std::uint64_t> peers_cache{0};
  std::atomic<bool> closing{false};
  std::atomic<bool> is_closed{false};
  std::atomic<std::size_t> undelivered{0};

  void check_interrupt() const {
    if (closing.load()) throw TransportError("Sender closed while a send was waiting (" + join(endpoints) + ")");
    if (opt.interrupt) opt.interrupt();
  }

  /// Polls for sockets that can take a message; fills items[].revents. False on timeout.
  bool poll_out(long wait_ms) {
    for (std::size_t i = 0; i < socks.size(); ++i) items[i] = {socks[i].get(), 0, ZMQ_POLLOUT, 0};
    const int rc = zmq_poll(items.data(), static_cast<int>(items.size()), wait_ms);
    if (rc < 0) {
      if (zmq_errno() == EINTR) return false;
      throw TransportError(zerr("zmq_poll"));
    }
    return rc > 0;
  }

  [[noreturn]] void timeout_error(const char* what, milliseconds t) const {
    throw TimeoutError(std::string(what) + ": no consumer took the message within " + seconds_text(t) +
                       " (endpoints " + join(endpoints) + "; none connected, or every queue full at hwm " +
                       std::to_string(opt.hwm) + ")");
  }

  void count(std::span<const OutFrame> frames) {
    std::lock_guard<std::mutex> lock(st_mu);
    ++st.messages;
    for (const auto& f : frames) st.bytes += f.bytes.size();
  }

  /// Tries each socket once, round robin, without waiting.
  bool try_each(std::span<const OutFrame> frames) {
    for (std::size_t k = 0; k < socks.size(); ++k) {
      const std::size_t i = (rr + k) % socks.size();
      if (send_now(socks[i].get(), frames, tracker, sock_names[i])) {
        rr = i + 1;
        count(frames);
        return true;
      }
    }
    return false;
  }

  bool send_push(std::span<const OutFrame> frames) {
    if (try_each(frames)) return true;  // the common case: no poll, no clock
    const auto deadline = deadline_of(opt.timeout);
    const auto t0 = Clock::now();
    for (;;) {
      check_interrupt();
      const long wait = slice_ms(deadline, opt.slice);
      if (wait < 0) timeout_error("send", *opt.timeout);
      if (poll_out(wait) && try_each(frames)) {
        std::lock_guard<std::mutex> lock(st_mu);
        st.blocked_ns += static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
        return true;
      }
    }
  }

  bool send_pub(std::span<const OutFrame> frames) {
    if (send_now(socks[0].get(), frames, tracker, sock_names[0])) {
      count(frames);
      return true;
    }
    std::lock_guard<std::mutex> lock(st_mu);
    ++st.dropped;
    return false;
  }
};

Sender::Sender(std::vector<std::string> endpoints, TransportOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.opt = std::move(options);
  im.ctx = im.opt.context ? im.opt.context : Context::global();
  const SocketType t = im.opt.socket_type;
  if (t != SocketType::push && t != SocketType::pub) {
    throw ValueError("Sender: socket type must be push or pub, not " + std::string(socket_type_name(t)));
  }
  if (endpoints.empty()) throw ValueError("Sender: no endpoint given");
  if (im.opt.hwm < 0) throw ValueError("Sender: hwm must be >= 0");
  const bool per_endpoint = t == SocketType::push && !im.opt.bind;
  if (per_endpoint) {
    for (const auto& e : endpoints) {
      Socket s(im.ctx->handle(), ZMQ_PUSH);
      apply_common(s, im.opt, true, *im.ctx);
      s.set(ZMQ_IMMEDIATE, 1);  // queue only for peers that are connected
      im.endpoints.push_back(s.attach(e, false));
      im.sock_names.push_back(im.endpoints.back());
      im.socks.push_back(std::move(s));
    }
  } else {
    Socket s(im.ctx->handle(), zmq_type(t));
    apply_common(s, im.opt, true, *im.ctx);
    if (t == SocketType::pub) s.set(ZMQ_XPUB_NODROP, 1);  // full queue -> EAGAIN, which we count
    if (!im.opt.bind) s.set(ZMQ_IMMEDIATE, 1);
    if (t == SocketType::push && im.opt.bind) {
      im.monitor = std::make_unique<PeerMonitor>(im.ctx->handle(), s.get());
    }
    try {
      for (const auto& e : endpoints) im.endpoints.push_back(s.attach(e, im.opt.bind));
    } catch (...) {
      if (im.monitor) im.monitor->stop();  // before `s` closes: it stops monitoring `s`
      im.monitor.reset();
      throw;
    }
    im.sock_names.push_back(join(im.endpoints));
    im.socks.push_back(std::move(s));
  }
  im.items.resize(im.socks.size());
}

Sender::~Sender() {
  try {
    impl_->opt.interrupt = nullptr;  // a destructor must not throw on Ctrl-C
    // Bounded whatever the timeout (nullopt included): a destructor (a Python finalizer, a
    // stack unwinding) must not wait forever for a consumer that stopped reading.
    const auto t = impl_->opt.timeout;
    close(t && *t < kDestructorLinger ? *t : kDestructorLinger);
  } catch (...) {  // NOLINT: best effort; close() reports through its return value
  }
}

bool Sender::send(std::span<const OutFrame> frames) {
  Impl& im = *impl_;
  std::lock_guard<std::mutex> lock(im.sock_mu);
  if (im.is_closed || im.closing) throw TransportError("send on a closed Sender (" + join(im.endpoints) + ")");
  if (frames.empty()) throw ValueError("send: a message needs at least one frame");
  if (im.opt.socket_type == SocketType::pub) return im.send_pub(frames);
  return im.send_push(frames);
}

std::size_t Sender::broadcast(std::span<const OutFrame> frames) {
  Impl& im = *impl_;
  std::lock_guard<std::mutex> lock(im.sock_mu);
  if (im.is_closed || im.closing) throw TransportError("broadcast on a closed Sender (" + join(im.endpoints) + ")");
  if (frames.empty()) throw ValueError("broadcast: a message needs at least one frame");
  {
    std::lock_guard<std::mutex> st_lock(im.st_mu);
    ++im.st.broadcasts;
  }
  if (im.opt.socket_type == SocketType::pub) return im.send_pub(frames) ? 1 : 0;
  if (im.monitor) {
    // push + bind: wait until every queue is empty (nothing in flight), so that no peer is
    // skipped by libzmq's load balancer as full; then one copy per connected peer, which
    // the load balancer hands to the peers in turn.
    const auto deadline = deadline_of(im.opt.timeout);
    {
      std::unique_lock<std::mutex> tlock(im.tracker->mu);
      while (im.tracker->in_flight.load(std::memory_order_acquire) != 0) {
        const long wait = slice_ms(deadline, im.opt.slice);
        if (wait < 0) {
          throw TimeoutError("broadcast: " + std::to_string(im.tracker->in_flight.load()) +
                             " queued message(s) not taken by the consumers of " + join(im.endpoints) + " within " +
                             seconds_text(*im.opt.timeout) + "; nothing was sent");
        }
        im.tracker->cv.wait_for(tlock, milliseconds(wait));
        tlock.unlock();
        im.check_interrupt();
        tlock.lock();
      }
    }
    im.poll_out(0);  // lets libzmq process pending pipe attach/activate commands
    const std::size_t n = std::max<std::size_t>(1, im.monitor->peers_now());
    for (std::size_t i = 0; i < n; ++i) im.send_push(frames);
    return n;
  }
  // push + connect: wait until every endpoint can take a message, then one copy each.
  const auto deadline = deadline_of(im.opt.timeout);
  long wait = 0;
  for (;;) {
    im.poll_out(wait);
    std::vector<std::string> missing;
    for (std::size_t i = 0; i < im.socks.size(); ++i) {
      if (!(im.items[i].revents & ZMQ_POLLOUT)) missing.push_back(im.sock_names[i]);
    }
    if (missing.empty()) break;
    im.check_interrupt();
    wait = slice_ms(deadline, im.opt.slice);
    if (wait < 0) {
      throw TimeoutError("broadcast: " + join(missing) + " did not become ready within " +
                         seconds_text(*im.opt.timeout) + " (not connected, or queue full at hwm " +
                         std::to_string(im.opt.hwm) + "); nothing was sent");
    }
  }
  for (std::size_t i = 0; i < im.socks.size(); ++i) {
    // A socket that was writable stays writable until we send to it.
    if (!send_now(im.socks[i].get(), frames, im.tracker, im.sock_names[i])) {
      throw TransportError("broadcast: " + im.sock_names[i] + " stopped accepting messages");
    }
    im.count(frames);
  }
  return im.socks.size();
}

std::size_t Sender::close(std::optional<milliseconds> timeout) {
  Impl& im = *impl_;
  std::lock_guard<std::mutex> close_lock(im.close_mu);
  if (im.is_closed) return im.undelivered;
  im.closing = true;  // a send blocked on another thread gives up at its next slice
  const auto deadline = deadline_of(timeout ? timeout : im.opt.timeout);
  {
    std::unique_lock<std::mutex> lock(im.tracker->mu);
    for (;;) {
      if (im.tracker->in_flight.load(std::memory_order_acquire) == 0) break;
      const long wait = slice_ms(deadline, im.opt.slice);
      if (wait < 0) break;
      im.tracker->cv.wait_for(lock, milliseconds(wait));
      if (im.opt.interrupt) {
        lock.unlock();
        im.opt.interrupt();
        lock.lock();
      }
    }
  }
  im.undelivered = static_cast<std::size_t>(im.tracker->in_flight.load(std::memory_order_acquire));
  std::lock_guard<std::mutex> lock(im.sock_mu);
  if (im.monitor) {
    im.monitor->stop();
    im.monitor.reset();
  }
  for (auto& s : im.socks) s.reset(0);  // what is left is discarded (and its owners released)
  im.is_closed = true;
  return im.undelivered;
}

SenderStats Sender::stats() const {
  Impl& im = *impl_;
  SenderStats s;
  {
    std::lock_guard<std::mutex> lock(im.st_mu);
    s = im.st;
  }
  s.in_flight = im.tracker->in_flight.load(std::memory_order_acquire);
  // Refresh the peer count only when no send holds the sockets (else: the last value).
  std::unique_lock<std::mutex> lock(im.sock_mu, std::try_to_lock);
  if (lock.owns_lock() && !im.is_closed) {
    std::uint64_t peers = 0;
    if (im.monitor) {
      peers = im.monitor->peers();
    } else if (im.opt.socket_type == SocketType::push) {
      im.poll_out(0);
      for (const auto& it : im.items) peers += (it.revents & ZMQ_POLLOUT) ? 1 : 0;
    }
    im.peers_cache = peers;
  }
  s.peers = im.peers_cache;
  return s;
}

const std::vector<std::string>& Sender::endpoints() const noexcept { return impl_->endpoints; }
bool Sender::closed() const noexcept { return impl_->is_closed; }
bool Sender::curve_server() const noexcept { return impl_->opt.curve && impl_->opt.curve->server; }
bool Sender::curve_allow_list_set() const noexcept {
  return curve_server() && !impl_->opt.curve->allowed_clients.empty();
}

// ---- Receiver ---------------------------------------------------------------------------

struct Frame::Msg {
  zmq_msg_t m;
  Msg() { zmq_msg_init(&m); }
  ~Msg() { zmq_msg_close(&m); }
  Msg(const Msg&) = delete;
  Msg& operator=(const Msg&) = delete;
};

std::span<const std::byte> Frame::bytes() const noexcept {
  if (!msg_) return {};
  return {static_cast<const std::byte*>(zmq_msg_data(&msg_->m)), zmq_msg_size(&msg_->m)};
}

struct Receiver::Impl {
  TransportOptions opt;
  std::shared_ptr<Context> ctx;
  Socket sock;  // guarded by sock_mu: one recv at a time; close() may come from any thread
  std::vector<std::string> endpoints;
  std::mutex sock_mu;
  std::atomic<bool> closing{false};
  std::atomic<std::uint64_t> messages{0};
  std::atomic<std::uint64_t> bytes{0};
};

Receiver::Receiver(std::vector<std::string> endpoints, TransportOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.opt = std::move(options);
  im.ctx = im.opt.context ? im.opt.context : Context::global();
  const SocketType t = im.opt.socket_type;
  if (t != SocketType::pull && t != SocketType::sub) {
    throw ValueError("Receiver: socket type must be pull or sub, not " + std::string(socket_type_name(t)));
  }
  if (endpoints.empty()) throw ValueError("Receiver: no endpoint given");
  if (im.opt.reuse_buffers) reuse_message_buffers();
  im.sock = Socket(im.ctx->handle(), zmq_type(t));
  apply_common(im.sock, im.opt, false, *im.ctx);
  if (t == SocketType::sub) {
    for (const auto& prefix : im.opt.subscribe) im.sock.set(ZMQ_SUBSCRIBE, prefix);
  }
  for (const auto& e : endpoints) im.endpoints.push_back(im.sock.attach(e, im.opt.bind));
}

Receiver::~Receiver() { close(); }

std::optional<std::vector<Frame>> Receiver::try_recv(std::optional<milliseconds> timeout) {
  Impl& im = *impl_;
  std::lock_guard<std::mutex> lock(im.sock_mu);
  if (!im.sock || im.closing) throw TransportError("recv on a closed Receiver (" + join(im.endpoints) + ")");
  const auto deadline = deadline_of(timeout);
  std::vector<Frame> frames;
  auto msg = std::make_shared<Frame::Msg>();
  // Try first, poll only when nothing is there (saves a system call per message).
  while (zmq_msg_recv(&msg->m, im.sock.get(), ZMQ_DONTWAIT) < 0) {
    if (zmq_errno() != EAGAIN && zmq_errno() != EINTR) throw TransportError(zerr("recv on " + join(im.endpoints)));
    if (im.closing) throw TransportError("Receiver closed while a recv was waiting (" + join(im.endpoints) + ")");
    if (im.opt.interrupt) im.opt.interrupt();
    const long wait = slice_ms(deadline, im.opt.slice);
    if (wait < 0) return std::nullopt;
    zmq_pollitem_t item{im.sock.get(), 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, wait) < 0 && zmq_errno() != EINTR) throw TransportError(zerr("zmq_poll"));
  }
  for (;;) {
    const bool more = zmq_msg_more(&msg->m) != 0;
    im.bytes += zmq_msg_size(&msg->m);
    frames.push_back(Frame(std::move(msg)));
    if (!more) break;
    msg = std::make_shared<Frame::Msg>();
    if (zmq_msg_recv(&msg->m, im.sock.get(), 0) < 0) throw TransportError(zerr("recv on " + join(im.endpoints)));
  }
  ++im.messages;
  return frames;
}

std::vector<Frame> Receiver::recv(std::optional<milliseconds> timeout) {
  const auto t = timeout ? timeout : impl_->opt.timeout;
  auto r = try_recv(t);
  if (!r) {
    throw TimeoutError("recv: no message within " + seconds_text(*t) + " on " + join(impl_->endpoints));
  }
  return std::move(*r);
}

void Receiver::close() noexcept {
  impl_->closing = true;  // a recv waiting on another thread gives up at its next slice
  std::lock_guard<std::mutex> lock(impl_->sock_mu);
  impl_->sock.reset(0);
}

ReceiverStats Receiver::stats() const { return {impl_->messages.load(), impl_->bytes.load()}; }
const std::vector<std::string>& Receiver::endpoints() const noexcept { return impl_->endpoints; }
bool Receiver::closed() const noexcept { return impl_->closing.load(); }
bool Receiver::curve_server() const noexcept { return impl_->opt.curve && impl_->opt.curve->server; }
bool Receiver::curve_allow_list_set() const noexcept {
  return curve_server() && !impl_->opt.curve->allowed_clients.empty();
}

}  // namespace lclstream
