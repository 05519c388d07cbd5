// PUSH that connects to N endpoints, the default streamer role (transport.hpp, first
// guarantee): one socket per endpoint with ZMQ_IMMEDIATE, so messages queue only for
// connected peers; send() blocks rather than drop; broadcast() is exact (one copy each).
#include <zmq.h>

#include "lclstream/error.hpp"
#include "transport/send_strategy.hpp"
#include "transport/socket_setup.hpp"

namespace lclstream::transport_detail {
namespace {

class PushConnect final : public SendStrategy {
 public:
  PushConnect(SenderCore& core, const std::vector<std::string>& endpoints) : core_(core), socks_(core) {
    for (const auto& e : endpoints) {
      Socket s(core.ctx->handle(), ZMQ_PUSH);
      configure_socket(s, core.opt, true, *core.ctx);
      s.set(ZMQ_IMMEDIATE, 1);  // queue only for peers that are connected
      std::string name = s.attach(e, false);
      core.endpoints.push_back(name);
      socks_.add(std::move(s), std::move(name));
    }
  }

  bool send(std::span<const OutFrame> frames) override {
    socks_.send_blocking(frames);
    return true;
  }

  // Wait until every endpoint can take a message, then one copy each: a socket that was
  // writable stays writable until we send to it.
  std::size_t broadcast(std::span<const OutFrame> frames) override {
    const auto deadline = deadline_of(core_.opt.timeout);
    long wait = 0;
    for (;;) {
      socks_.poll_out(wait);
      std::vector<std::string> missing;
      for (std::size_t i = 0; i < socks_.size(); ++i) {
        if (!socks_.writable(i)) missing.push_back(socks_.name(i));
      }
      if (missing.empty()) break;
      core_.check_interrupt();
      wait = slice_ms(deadline, core_.opt.slice);
      if (wait < 0) {
        throw TimeoutError("broadcast: " + join(missing) + " did not become ready within " +
                           seconds_text(*core_.opt.timeout) + " (not connected, or queue full at hwm " +
                           std::to_string(core_.opt.hwm) + "); nothing was sent");
      }
    }
    for (std::size_t i = 0; i < socks_.size(); ++i) {
      if (!send_now(socks_.get(i), frames, core_.tracker, socks_.name(i))) {
        throw TransportError("broadcast: " + socks_.name(i) + " stopped accepting messages");
      }
      core_.count(frames);
    }
    return socks_.size();
  }

  // Endpoints that can take a message now.
  std::uint64_t peers() override {
    socks_.poll_out(0);
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < socks_.size(); ++i) n += socks_.writable(i) ? 1 : 0;
    return n;
  }

  void close_sockets() noexcept override { socks_.reset(); }

 private:
  SenderCore& core_;
  PushSockets socks_;
};

}  // namespace

std::unique_ptr<SendStrategy> make_push_connect(SenderCore& core, const std::vector<std::string>& endpoints) {
  return std::make_unique<PushConnect>(core, endpoints);
}

}  // namespace lclstream::transport_detail
