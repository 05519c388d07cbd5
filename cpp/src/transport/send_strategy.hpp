#pragma once
// How a Sender sends: one strategy per socket arrangement, each carrying one guarantee
// of transport.hpp.
//
//   PushConnect  PUSH that connects to N endpoints: one socket per endpoint, round robin
//                over those that can take a message, blocking (with a deadline) when none
//                can; broadcast waits for every endpoint, then one copy each.
//   PushBind     PUSH that binds: one socket, libzmq's load balancer over the peers that
//                connected (counted by a PeerMonitor drained on its own thread);
//                broadcast waits until nothing is queued, then one copy per peer.
//   Publisher    PUB: never blocks; a full queue drops (counted), no peers are tracked.
//
// The Sender (transport.cpp) owns what every strategy shares (SenderCore: options,
// context, the in-flight Tracker, statistics, the closing flag), serialises calls and
// runs close(); a strategy owns its sockets.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "lclstream/transport.hpp"
#include "transport/frames_out.hpp"
#include "transport/socket.hpp"

namespace lclstream::transport_detail {

/// What the strategies of one Sender share.
struct SenderCore {
  TransportOptions opt;
  std::shared_ptr<Context> ctx;
  std::vector<std::string> endpoints;  // as bound or connected
  std::shared_ptr<Tracker> tracker = std::make_shared<Tracker>();
  std::atomic<bool> closing{false};
  mutable std::mutex st_mu;
  SenderStats st;  // guarded by st_mu

  /// Throws when close() began on another thread, or when the interrupt check throws.
  void check_interrupt() const {
    if (closing.load()) throw TransportError("Sender closed while a send was waiting (" + join(endpoints) + ")");
    if (opt.interrupt) opt.interrupt();
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
  void count_blocked(Clock::duration d) {
    std::lock_guard<std::mutex> lock(st_mu);
    st.blocked_ns += static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
  }
  void count_dropped() {
    std::lock_guard<std::mutex> lock(st_mu);
    ++st.dropped;
  }
};

/// One way of sending. Calls are serialised by the Sender (one thread at a time).
class SendStrategy {
 public:
  virtual ~SendStrategy() = default;
  /// Sends one message; false only when a PUB dropped it.
  virtual bool send(std::span<const OutFrame> frames) = 0;
  /// One copy per peer (see transport.hpp); returns the copies sent.
  virtual std::size_t broadcast(std::span<const OutFrame> frames) = 0;
  /// The peer count SenderStats reports.
  virtual std::uint64_t peers() = 0;
  /// Stops any helper thread and closes the sockets, discarding what is still queued.
  virtual void close_sockets() noexcept = 0;
};

/// Each adds its resolved endpoints to core.endpoints.
std::unique_ptr<SendStrategy> make_push_connect(SenderCore& core, const std::vector<std::string>& endpoints);
std::unique_ptr<SendStrategy> make_push_bind(SenderCore& core, const std::vector<std::string>& endpoints);
std::unique_ptr<SendStrategy> make_publisher(SenderCore& core, const std::vector<std::string>& endpoints);

/// The PUSH sockets of PushConnect (one per endpoint) and PushBind (one): non-blocking
/// round robin first, then polling in slices until the deadline.
class PushSockets {
 public:
  explicit PushSockets(SenderCore& core) : core_(core) {}
  void add(Socket s, std::string name) {
    socks_.push_back(std::move(s));
    names_.push_back(std::move(name));
    items_.resize(socks_.size());
  }
  std::size_t size() const noexcept { return socks_.size(); }
  void* get(std::size_t i) const noexcept { return socks_[i].get(); }
  const std::string& name(std::size_t i) const noexcept { return names_[i]; }
  /// Polls for sockets that can take a message; False on timeout. writable(i) after.
  bool poll_out(long wait_ms);
  bool writable(std::size_t i) const noexcept { return (items_[i].revents & ZMQ_POLLOUT) != 0; }
  /// Sends to the next socket that can take the message, blocking up to opt.timeout.
  void send_blocking(std::span<const OutFrame> frames);
  void reset() noexcept {
    for (auto& s : socks_) s.reset(0);
  }

 private:
  bool try_each(std::span<const OutFrame> frames);

  SenderCore& core_;
  std::vector<Socket> socks_;
  std::vector<std::string> names_;  // the endpoint(s) of each socket, for messages
  std::vector<zmq_pollitem_t> items_;
  std::size_t rr_ = 0;
};

}  // namespace lclstream::transport_detail
