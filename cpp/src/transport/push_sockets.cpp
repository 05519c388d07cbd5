// Non-blocking round robin, then sliced polling, over PUSH sockets (see send_strategy.hpp).
#include <zmq.h>

#include <cerrno>

#include "lclstream/error.hpp"
#include "transport/send_strategy.hpp"

namespace lclstream::transport_detail {

bool PushSockets::poll_out(long wait_ms) {
  for (std::size_t i = 0; i < socks_.size(); ++i) items_[i] = {socks_[i].get(), 0, ZMQ_POLLOUT, 0};
  const int rc = zmq_poll(items_.data(), static_cast<int>(items_.size()), wait_ms);
  if (rc < 0) {
    if (zmq_errno() == EINTR) return false;
    throw TransportError(zerr("zmq_poll"));
  }
  return rc > 0;
}

bool PushSockets::try_each(std::span<const OutFrame> frames) {
  for (std::size_t k = 0; k < socks_.size(); ++k) {
    const std::size_t i = (rr_ + k) % socks_.size();
    if (send_now(socks_[i].get(), frames, core_.tracker, names_[i])) {
      rr_ = i + 1;
      core_.count(frames);
      return true;
    }
  }
  return false;
}

void PushSockets::send_blocking(std::span<const OutFrame> frames) {
  if (try_each(frames)) return;  // the common case: no poll, no clock
  const auto deadline = deadline_of(core_.opt.timeout);
  const auto t0 = Clock::now();
  for (;;) {
    core_.check_interrupt();
    const long wait = slice_ms(deadline, core_.opt.slice);
    if (wait < 0) core_.timeout_error("send", *core_.opt.timeout);
    if (poll_out(wait) && try_each(frames)) {
      core_.count_blocked(Clock::now() - t0);
      return;
    }
  }
}

}  // namespace lclstream::transport_detail
