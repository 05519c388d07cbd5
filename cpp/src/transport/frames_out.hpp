#pragma once
// Zero-copy hand-off of outgoing frames to libzmq, shared by every send strategy.
//
// Why a tracker: close() and a bound PUSH's broadcast() must know when libzmq is done
// with every message it accepted; libzmq says so only by calling each message's free
// callback, possibly on an I/O thread. The Tracker counts the messages still held and
// wakes whoever waits when the count reaches zero.
#include <zmq.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "lclstream/transport.hpp"

namespace lclstream::transport_detail {

/// Counts messages libzmq still holds; the free callback signals waiters.
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

/// Sends all frames as one message without waiting. False when the socket cannot take a
/// message now (nothing was sent; the frames' owners are untouched beyond a ref count).
/// The message's last frame is tracked by `t` until libzmq releases it.
bool send_now(void* sock, std::span<const OutFrame> frames, const std::shared_ptr<Tracker>& t,
              const std::string& where);

}  // namespace lclstream::transport_detail
