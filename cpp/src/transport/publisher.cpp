// PUB (transport.hpp, third guarantee): never blocks. ZMQ_XPUB_NODROP turns libzmq's
// silent drop on a full subscriber queue into EAGAIN, which is counted in stats().dropped.
#include <zmq.h>

#include "transport/send_strategy.hpp"
#include "transport/socket_setup.hpp"

namespace lclstream::transport_detail {
namespace {

class Publisher final : public SendStrategy {
 public:
  Publisher(SenderCore& core, const std::vector<std::string>& endpoints)
      : core_(core), sock_(core.ctx->handle(), ZMQ_PUB) {
    configure_socket(sock_, core.opt, true, *core.ctx);
    sock_.set(ZMQ_XPUB_NODROP, 1);  // full queue -> EAGAIN, which we count
    if (!core.opt.bind) sock_.set(ZMQ_IMMEDIATE, 1);
    for (const auto& e : endpoints) core.endpoints.push_back(sock_.attach(e, core.opt.bind));
    name_ = join(core.endpoints);
  }

  bool send(std::span<const OutFrame> frames) override {
    if (send_now(sock_.get(), frames, core_.tracker, name_)) {
      core_.count(frames);
      return true;
    }
    core_.count_dropped();
    return false;
  }

  // Every subscriber gets the one message (or, with a full queue, none does).
  std::size_t broadcast(std::span<const OutFrame> frames) override { return send(frames) ? 1 : 0; }

  std::uint64_t peers() override { return 0; }  // subscribers are not tracked

  void close_sockets() noexcept override { sock_.reset(0); }

 private:
  SenderCore& core_;
  Socket sock_;
  std::string name_;
};

}  // namespace

std::unique_ptr<SendStrategy> make_publisher(SenderCore& core, const std::vector<std::string>& endpoints) {
  return std::make_unique<Publisher>(core, endpoints);
}

}  // namespace lclstream::transport_detail
