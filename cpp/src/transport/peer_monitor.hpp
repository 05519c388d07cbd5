#pragma once
// Counts the peers connected to a bound socket from its libzmq socket monitor.
//
// Why a thread: libzmq's I/O thread writes every monitor event into an inproc socket and
// blocks when that socket's queue is full (about a thousand events). Read only now and then
// (at broadcast() or stats()), ~1,100 TCP connect/close cycles (a port scanner, a health
// check) fill it and freeze the I/O thread: nothing more is sent and close() never returns.
// A PeerMonitor drains the events continuously on its own thread, so the I/O thread never
// waits on it, whatever connects.
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <set>
#include <thread>

#include "transport/socket.hpp"

namespace lclstream::transport_detail {

class PeerMonitor {
 public:
  /// Starts monitoring `monitored` (accepted / disconnected connections) in context `ctx`.
  PeerMonitor(void* ctx, void* monitored);
  /// stop(), then joins the thread.
  ~PeerMonitor();
  PeerMonitor(const PeerMonitor&) = delete;
  PeerMonitor& operator=(const PeerMonitor&) = delete;

  /// Stops monitoring and the thread. Call it from the thread that uses the monitored
  /// socket, before closing that socket. Idempotent.
  void stop() noexcept;
  /// Connected peers as of the events drained so far.
  std::size_t peers() const;
  /// Connected peers after one complete drain that began after this call, so an event
  /// libzmq emitted before it is counted (waits about one slice, at most `max_wait`).
  std::size_t peers_now(std::chrono::milliseconds max_wait = std::chrono::milliseconds(500));
  /// Events drained so far (tests: the monitor keeps up).
  std::uint64_t events() const noexcept { return events_.load(); }

 private:
  void run() noexcept;
  void drain();

  void* monitored_;
  Socket pair_;  // used by the thread only
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> events_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::uint32_t> fds_;  // guarded by mu_
  std::uint64_t passes_ = 0;     // guarded by mu_
  bool stopped_ = false;
};

}  // namespace lclstream::transport_detail
