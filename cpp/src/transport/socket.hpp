#pragma once
// The one libzmq socket wrapper every transport unit uses (RAII: a socket is closed, with
// the linger asked for, whatever path leaves its owner), and the small helpers they share.
#include <zmq.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lclstream/error.hpp"

namespace lclstream::transport_detail {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

inline std::string zerr(const std::string& what) { return what + ": " + zmq_strerror(zmq_errno()); }

inline std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& e : v) s += (s.empty() ? "" : ", ") + e;
  return s;
}

inline std::string seconds_text(milliseconds t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(t.count()) / 1000.0);
  return buf;
}

/// RAII libzmq socket.
class Socket {
 public:
  Socket() = default;
  Socket(void* ctx, int type) : s_(zmq_socket(ctx, type)) {
    if (s_ == nullptr) throw TransportError(zerr("zmq_socket"));
  }
  Socket(Socket&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Socket& operator=(Socket&& o) noexcept {
    if (this != &o) {
      reset();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { reset(); }

  void reset(int linger_ms = 0) noexcept {
    if (s_ != nullptr) {
      zmq_setsockopt(s_, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
      zmq_close(s_);
      s_ = nullptr;
    }
  }
  void* get() const noexcept { return s_; }
  explicit operator bool() const noexcept { return s_ != nullptr; }

  void set(int opt, int v) {
    if (zmq_setsockopt(s_, opt, &v, sizeof v) != 0) {
      throw TransportError(zerr("zmq_setsockopt(" + std::to_string(opt) + ")"));
    }
  }
  void set(int opt, const std::string& v) {
    if (zmq_setsockopt(s_, opt, v.data(), v.size()) != 0) {
      throw TransportError(zerr("zmq_setsockopt(" + std::to_string(opt) + ")"));
    }
  }
  /// Binds or connects; returns the endpoint as libzmq resolved it (wildcard ports).
  std::string attach(const std::string& endpoint, bool bind) {
    if (bind) {
      if (zmq_bind(s_, endpoint.c_str()) != 0) throw TransportError(zerr("bind " + endpoint));
      char buf[1024];
      std::size_t n = sizeof buf;
      if (zmq_getsockopt(s_, ZMQ_LAST_ENDPOINT, buf, &n) == 0 && n > 1) return std::string(buf, n - 1);
      return endpoint;
    }
    if (zmq_connect(s_, endpoint.c_str()) != 0) throw TransportError(zerr("connect " + endpoint));
    return endpoint;
  }

 private:
  void* s_ = nullptr;
};

/// Milliseconds to wait in the next slice; -1 when the deadline has passed.
inline long slice_ms(const std::optional<Clock::time_point>& deadline, milliseconds slice) {
  if (!deadline) return static_cast<long>(slice.count());
  const auto left = std::chrono::duration_cast<milliseconds>(*deadline - Clock::now()).count();
  if (left <= 0) return -1;
  return std::min<long>(static_cast<long>(left), static_cast<long>(slice.count()));
}

inline std::optional<Clock::time_point> deadline_of(std::optional<milliseconds> t) {
  if (!t) return std::nullopt;
  return Clock::now() + *t;
}

}  // namespace lclstream::transport_detail
