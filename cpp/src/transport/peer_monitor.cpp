// The socket monitor's events drained on their own thread (see peer_monitor.hpp for why).
#include "transport/peer_monitor.hpp"

#include <zmq.h>

#include <atomic>
#include <cstring>
#include <string>

#include "lclstream/error.hpp"

namespace lclstream::transport_detail {

namespace {
std::atomic<std::uint64_t> g_monitor_id{0};
constexpr int kPollMs = 10;
}  // namespace

PeerMonitor::PeerMonitor(void* ctx, void* monitored) : monitored_(monitored) {
  const std::string ep = "inproc://lclstream-peer-monitor-" + std::to_string(g_monitor_id.fetch_add(1));
  if (zmq_socket_monitor(monitored_, ep.c_str(), ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0) {
    throw TransportError(zerr("zmq_socket_monitor"));
  }
  pair_ = Socket(ctx, ZMQ_PAIR);
  pair_.set(ZMQ_RCVHWM, 0);  // never make libzmq's side wait, even if this thread is late
  pair_.set(ZMQ_LINGER, 0);
  pair_.attach(ep, false);
  thread_ = std::thread([this] { run(); });
}

PeerMonitor::~PeerMonitor() { stop(); }

void PeerMonitor::stop() noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  zmq_socket_monitor(monitored_, nullptr, 0);  // libzmq stops emitting and closes its side
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  pair_.reset(0);
  cv_.notify_all();
}

void PeerMonitor::run() noexcept {
  while (!stop_.load()) {
    zmq_pollitem_t item{pair_.get(), 0, ZMQ_POLLIN, 0};
    const int rc = zmq_poll(&item, 1, kPollMs);
    if (rc > 0) drain();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++passes_;
    }
    cv_.notify_all();
  }
  drain();  // what was emitted before stop
}

void PeerMonitor::drain() {
  for (;;) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, pair_.get(), ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&m);
      return;
    }
    std::uint16_t event = 0;
    std::uint32_t fd = 0;
    if (zmq_msg_size(&m) >= 6) {
      std::memcpy(&event, zmq_msg_data(&m), 2);
      std::memcpy(&fd, static_cast<const char*>(zmq_msg_data(&m)) + 2, 4);
    }
    const bool more = zmq_msg_more(&m) != 0;
    zmq_msg_close(&m);
    if (more) {  // the endpoint frame
      zmq_msg_init(&m);
      zmq_msg_recv(&m, pair_.get(), 0);
      zmq_msg_close(&m);
    }
    events_.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    if (event == ZMQ_EVENT_ACCEPTED) fds_.insert(fd);
    if (event == ZMQ_EVENT_DISCONNECTED) fds_.erase(fd);
  }
}

std::size_t PeerMonitor::peers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fds_.size();
}

std::size_t PeerMonitor::peers_now(std::chrono::milliseconds max_wait) {
  std::unique_lock<std::mutex> lock(mu_);
  // Two passes: the one running now may have drained before the call.
  const std::uint64_t target = passes_ + 2;
  cv_.wait_for(lock, max_wait, [&] { return stopped_ || passes_ >= target; });
  return fds_.size();
}

}  // namespace lclstream::transport_detail
