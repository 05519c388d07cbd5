#pragma once
// ZeroMQ transport: zero-copy Sender and Receiver over libzmq's C API.
//
// Framing contract (DESIGN.md, "Message framing"): the transport never adds frames or
// messages of its own. send() sends exactly one ZeroMQ message whose frames are the given
// byte ranges, in order; stream ids, sequence numbers and end totals travel inside the
// format. broadcast() sends one copy of a message to every peer (the end message).
//
// Zero copy: an OutFrame's bytes are handed to libzmq as they are (zmq_msg_init_data);
// its owner is released once libzmq is done with them, possibly on a libzmq I/O thread,
// so owners must be safe to release from any thread (a pooled buffer, a Batch, or a
// handle that defers the real release to its own thread, as the Python bindings do).
//
// Guarantees (what holds, and when). Each maps to one unit of cpp/src/transport/ over one
// socket wrapper (socket.hpp: RAII, the linger asked for on every path):
//   PUSH+connect -> PushConnect (push_connect.cpp), PUSH+bind -> PushBind (push_bind.cpp)
//   with its PeerMonitor (peer_monitor.cpp), PUB -> Publisher (publisher.cpp), zero-copy
//   hand-off and close()'s wait -> Tracker (frames_out.cpp), socket options and CURVE/ZAP
//   -> socket_setup.cpp, PULL/SUB -> Receiver (receiver.cpp); Sender (transport.cpp) only
//   serialises calls and runs close().
// * PUSH, connect to N endpoints (the default streamer role): one socket per endpoint with
//   ZMQ_IMMEDIATE, so messages queue only for connected peers. send() round-robins over
//   the endpoints that can take a message now and blocks (up to the timeout, then
//   TimeoutError naming the endpoints) when none can: nothing is dropped. broadcast()
//   waits until every endpoint can take a message, then sends one copy to each: exact.
// * PUSH, bind: one socket; libzmq load-balances over the peers that connected.
//   broadcast() first waits (up to the timeout) until every queued message has been
//   taken, so that no peer's queue is full, then sends one copy per connected peer
//   (a socket monitor tracks accepted and disconnected connections); libzmq's load
//   balancer hands consecutive messages to its peers in turn, so each peer gets one copy.
//   A peer that connects or disconnects during the broadcast (or is still in its ZMTP
//   handshake) can miss it or get two: consumers connect at start, long before the end.
//   The monitor's events are drained continuously on the PeerMonitor's own thread, so
//   any number of connect/close cycles (port scanners, health checks) never blocks
//   libzmq's I/O thread (tests/test_transport_faults.py: 2,000 cycles, then a stream).
// * PUB: never blocks. With several subscribers a message is dropped for all of them when
//   any subscriber's queue is full (ZMQ_XPUB_NODROP turns libzmq's silent drop into an
//   error we count in stats().dropped). A message published while nobody is subscribed
//   is discarded by libzmq and is not counted.
// * close(timeout) waits until libzmq has handed every queued message to the kernel (or,
//   for inproc, until the receiver released it) and returns how many messages were still
//   queued when the timeout hit (they are discarded).
// * Threads: a Sender or Receiver is used by one thread at a time for send/recv (calls
//   from several threads are serialised); stats() may be called from any thread, and
//   close() from another thread makes a send/recv that is waiting give up with
//   TransportError within one slice (50 ms).
// * A consumer that restarts (tests/test_transport.py::test_consumer_restart_*): what was
//   already written to its connection is lost with it; what was still queued for it is
//   kept until the connection comes back, then discarded, never re-delivered (so nothing
//   arrives twice; close() counts such messages as undelivered). The format's sequence
//   numbers reveal the gap (lclstream.completeness). With several endpoints, send() goes
//   on with the consumers that are up.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lclstream {

enum class SocketType { push, pull, pub, sub };
SocketType socket_type_from_name(std::string_view name);  // ValueError for anything else
std::string_view socket_type_name(SocketType t) noexcept;

/// A CurveZMQ key pair as Z85 text (40 characters each).
struct CurveKeyPair {
  std::string public_key;
  std::string secret_key;
};
/// True when libzmq was built with CURVE support.
bool has_curve() noexcept;
/// A fresh key pair (TransportError when libzmq lacks CURVE).
CurveKeyPair curve_keypair();

/// CurveZMQ settings: the server holds its own pair; a client holds its own pair and the
/// server's public key and refuses a server that cannot prove it holds the secret.
/// With `allowed_clients` the server also authenticates clients: only those public keys
/// get through (a ZAP handler in the socket's Context checks them); empty = any client
/// that knows the server's public key.
struct CurveOptions {
  bool server = false;
  CurveKeyPair keys;
  std::string server_public_key;             // client only
  std::vector<std::string> allowed_clients;  // server only: Z85 public keys
};

/// libzmq allocates every large received message with malloc, and glibc serves such
/// blocks with fresh mmap()s that it unmaps again on free, so each message's pages are
/// faulted in anew (~0.5 GB/s here; a 32 MiB stream collapses). This makes glibc serve
/// them from its heaps and keep freed memory (no mmap for large blocks, a 1 GiB trim
/// threshold, and a 64 MiB top pad: libzmq's I/O thread allocates from an arena of its
/// own, whose extra 64 MiB heaps glibc unmaps as soon as they are empty whatever the trim
/// threshold, unless the pad is out of the previous heap's reach; without it, a receiver
/// holding two or three 32 MiB messages faulted ~1,400-3,000 pages in per message), so
/// received buffers are reused warm. Process-wide and idempotent: it
/// also changes how every other allocation of the process behaves (measured here: it
/// halves the two-thread speed of a codec call that allocates its output), so a Receiver
/// calls it only when TransportOptions::reuse_buffers is set, as a process dedicated to
/// receiving (`lclstream receive`) does; LCLSTREAM_MALLOC_TUNING=0 vetoes it.
/// Returns whether it is in effect.
bool reuse_message_buffers();

/// A libzmq context. inproc:// endpoints reach only sockets of the same context.
class Context {
 public:
  explicit Context(int io_threads = 1);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  /// The process-wide context (never terminated, so it is safe to use until exit).
  static std::shared_ptr<Context> global();
  void* handle() const noexcept { return ctx_; }

 private:
  friend struct ContextAccess;
  struct Global {};
  Context(Global, void* ctx) : ctx_(ctx), owned_(false) {}
  void* ctx_ = nullptr;
  bool owned_ = true;
  std::shared_ptr<void> zap_;  // the context's ZAP handler, started on first need
};

/// Called between the slices of every blocking wait; it throws to abort the wait (the
/// Python bindings check for Ctrl-C there).
using InterruptCheck = std::function<void()>;

struct TransportOptions {
  SocketType socket_type = SocketType::push;
  bool bind = false;
  /// Messages queued per peer before send blocks (push) or drops (pub).
  int hwm = 16;
  /// Deadline of each blocking call; nullopt waits forever.
  std::optional<std::chrono::milliseconds> timeout = std::chrono::seconds(30);
  /// Subscription prefixes (sub only).
  std::vector<std::string> subscribe{std::string()};
  std::optional<CurveOptions> curve;
  /// Kernel socket buffer sizes in bytes (0: the system default).
  int sndbuf = 0;
  int rcvbuf = 0;
  /// Receiver: make glibc keep and reuse freed message buffers instead of handing them
  /// back to the OS (see reuse_message_buffers(): process-wide, so off by default).
  bool reuse_buffers = false;
  std::shared_ptr<Context> context;  // null: Context::global()
  InterruptCheck interrupt;
  std::chrono::milliseconds slice{50};

  /// The receiver's default: a PULL socket that binds.
  static TransportOptions pull_bind() {
    TransportOptions o;
    o.socket_type = SocketType::pull;
    o.bind = true;
    return o;
  }
};

/// One frame to send: bytes, plus the owner that keeps them alive until libzmq is done.
/// With a null owner the bytes are copied (small headers).
struct OutFrame {
  std::span<const std::byte> bytes;
  std::shared_ptr<const void> owner;
};

struct SenderStats {
  std::uint64_t messages = 0;    // messages accepted by libzmq (broadcast copies included)
  std::uint64_t bytes = 0;       // their payload bytes
  std::uint64_t dropped = 0;     // pub only: messages dropped because a queue was full
  std::uint64_t broadcasts = 0;  // broadcast() calls
  std::uint64_t in_flight = 0;   // messages libzmq still holds
  std::uint64_t peers = 0;       // connect: endpoints that can take a message now; bind: connected peers
  std::uint64_t blocked_ns = 0;  // time send() spent waiting for a writable peer
};

/// The longest a Sender's destructor waits for queued messages: close(min(timeout, this)).
inline constexpr std::chrono::milliseconds kDestructorLinger{5000};

class Sender {
 public:
  Sender(std::vector<std::string> endpoints, TransportOptions options = {});
  /// close(min(options.timeout, kDestructorLinger)), errors swallowed: bounded even with no
  /// timeout, so dropping a Sender never blocks for good.
  ~Sender();
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  /// Sends one message made of `frames`. Returns false only for pub when it was dropped.
  bool send(std::span<const OutFrame> frames);
  bool send(OutFrame frame) { return send(std::span<const OutFrame>(&frame, 1)); }
  /// One copy of the message to every peer (see the guarantees above); returns the copies.
  std::size_t broadcast(std::span<const OutFrame> frames);
  /// Waits for queued messages (up to `timeout`; nullopt = options.timeout), closes the
  /// sockets and returns how many messages could not be delivered. Idempotent.
  std::size_t close(std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  SenderStats stats() const;
  /// The endpoints as bound or connected (tcp://host:* resolved to the real port).
  const std::vector<std::string>& endpoints() const noexcept;
  bool closed() const noexcept;
  /// True when this socket is a CURVE server (it holds the secret key peers encrypt to).
  bool curve_server() const noexcept;
  /// True when a CURVE server also checks client keys against an allow-list. A CURVE server
  /// without one encrypts but lets any client in: the Python layer warns about it at start.
  bool curve_allow_list_set() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// One received frame; its bytes stay valid while any copy of the Frame lives.
class Frame {
 public:
  Frame() = default;
  std::span<const std::byte> bytes() const noexcept;
  std::size_t size() const noexcept { return bytes().size(); }

 private:
  friend class Receiver;
  struct Msg;
  explicit Frame(std::shared_ptr<Msg> m) : msg_(std::move(m)) {}
  std::shared_ptr<Msg> msg_;
};

struct ReceiverStats {
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
};

class Receiver {
 public:
  Receiver(std::vector<std::string> endpoints, TransportOptions options = TransportOptions::pull_bind());
  ~Receiver();
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  /// The next message's frames; TimeoutError after `timeout` (nullopt = options.timeout).
  std::vector<Frame> recv(std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  /// Same, but an empty optional instead of TimeoutError.
  std::optional<std::vector<Frame>> try_recv(std::optional<std::chrono::milliseconds> timeout);
  void close() noexcept;
  ReceiverStats stats() const;
  const std::vector<std::string>& endpoints() const noexcept;
  bool closed() const noexcept;
  /// As Sender::curve_server / curve_allow_list_set.
  bool curve_server() const noexcept;
  bool curve_allow_list_set() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lclstream
