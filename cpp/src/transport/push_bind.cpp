// PUSH that binds (transport.hpp, second guarantee): one socket, libzmq's load balancer
// over the peers that connected; a PeerMonitor, drained on its own thread, counts them so
// broadcast() can send one copy per peer, and so no connect/close storm can freeze libzmq.
#include <zmq.h>

#include <algorithm>

#include "lclstream/error.hpp"
#include "transport/peer_monitor.hpp"
#include "transport/send_strategy.hpp"
#include "transport/socket_setup.hpp"

namespace lclstream::transport_detail {
namespace {

class PushBind final : public SendStrategy {
 public:
  PushBind(SenderCore& core, const std::vector<std::string>& endpoints) : core_(core), socks_(core) {
    Socket s(core.ctx->handle(), ZMQ_PUSH);
    configure_socket(s, core.opt, true, *core.ctx);
    monitor_ = std::make_unique<PeerMonitor>(core.ctx->handle(), s.get());
    try {
      for (const auto& e : endpoints) core.endpoints.push_back(s.attach(e, true));
    } catch (...) {
      monitor_->stop();  // before `s` closes: it stops monitoring `s`
      throw;
    }
    socks_.add(std::move(s), join(core.endpoints));
  }
  ~PushBind() override { close_sockets(); }
  PushBind(const PushBind&) = delete;
  PushBind& operator=(const PushBind&) = delete;

  bool send(std::span<const OutFrame> frames) override {
    socks_.send_blocking(frames);
    return true;
  }

  // Wait until every queue is empty (nothing in flight), so that libzmq's load balancer
  // skips no peer as full; then one copy per connected peer, which it hands out in turn.
  std::size_t broadcast(std::span<const OutFrame> frames) override {
    const auto deadline = deadline_of(core_.opt.timeout);
    Tracker& tr = *core_.tracker;
    {
      std::unique_lock<std::mutex> lock(tr.mu);
      while (tr.in_flight.load(std::memory_order_acquire) != 0) {
        const long wait = slice_ms(deadline, core_.opt.slice);
        if (wait < 0) {
          throw TimeoutError("broadcast: " + std::to_string(tr.in_flight.load()) +
                             " queued message(s) not taken by the consumers of " + join(core_.endpoints) +
                             " within " + seconds_text(*core_.opt.timeout) + "; nothing was sent");
        }
        tr.cv.wait_for(lock, milliseconds(wait));
        lock.unlock();
        core_.check_interrupt();
        lock.lock();
      }
    }
    socks_.poll_out(0);  // lets libzmq process pending pipe attach/activate commands
    const std::size_t n = std::max<std::size_t>(1, monitor_->peers_now());
    for (std::size_t i = 0; i < n; ++i) socks_.send_blocking(frames);
    return n;
  }

  std::uint64_t peers() override { return monitor_ ? monitor_->peers() : 0; }

  void close_sockets() noexcept override {
    if (monitor_) {
      monitor_->stop();  // before the socket closes
      monitor_.reset();
    }
    socks_.reset();
  }

 private:
  SenderCore& core_;
  PushSockets socks_;
  std::unique_ptr<PeerMonitor> monitor_;
};

}  // namespace

std::unique_ptr<SendStrategy> make_push_bind(SenderCore& core, const std::vector<std::string>& endpoints) {
  return std::make_unique<PushBind>(core, endpoints);
}

}  // namespace lclstream::transport_detail
