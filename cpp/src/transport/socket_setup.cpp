// Socket options and the CurveZMQ allow-list (ZAP) handler (see socket_setup.hpp).
#include "transport/socket_setup.hpp"

#include <zmq.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "lclstream/error.hpp"

namespace lclstream {
namespace {
using transport_detail::Socket;

std::atomic<std::uint64_t> g_zap_domain_id{0};

/// ZeroMQ authentication handler (ZAP, RFC 27) for one context: CURVE clients of a
/// socket whose ZAP domain is registered get through only with an allowed public key.
/// Requests for other domains are accepted (their sockets asked for no client check).
class ZapHandler {
 public:
  explicit ZapHandler(void* ctx) : rep_(ctx, ZMQ_REP) {
    rep_.set(ZMQ_LINGER, 0);
    rep_.attach("inproc://zeromq.zap.01", true);
    thread_ = std::thread([this] { run(); });
  }
  ~ZapHandler() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  /// A fresh domain whose clients must hold one of `keys` (Z85 public keys).
  std::string add_domain(const std::vector<std::string>& keys) {
    std::set<std::string> binary;
    for (const auto& k : keys) {
      if (k.size() != 40) throw ValueError("CURVE allowed_clients: '" + k + "' is not a 40-character Z85 public key");
      std::string b(32, '\0');
      if (zmq_z85_decode(reinterpret_cast<std::uint8_t*>(b.data()), k.c_str()) == nullptr) {
        throw ValueError("CURVE allowed_clients: '" + k + "' is not valid Z85");
      }
      binary.insert(std::move(b));
    }
    std::string domain = "lclstream-" + std::to_string(g_zap_domain_id.fetch_add(1));
    std::lock_guard<std::mutex> lock(mu_);
    allowed_[domain] = std::move(binary);
    return domain;
  }

 private:
  void run() {
    while (!stop_) {
      zmq_pollitem_t item{rep_.get(), 0, ZMQ_POLLIN, 0};
      if (zmq_poll(&item, 1, 50) <= 0) continue;
      std::vector<std::string> req;
      for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, rep_.get(), 0) < 0) {
          zmq_msg_close(&m);
          break;
        }
        req.emplace_back(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
        const bool more = zmq_msg_more(&m) != 0;
        zmq_msg_close(&m);
        if (!more) break;
      }
      // version, request id, domain, address, routing id, mechanism, credentials...
      bool ok = req.size() >= 6 && req[0] == "1.0";
      if (ok) {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = allowed_.find(req[2]);
        if (it != allowed_.end()) ok = req[5] == "CURVE" && req.size() >= 7 && it->second.count(req[6]) > 0;
      }
      const std::string parts[] = {"1.0", req.size() > 1 ? req[1] : std::string(), ok ? "200" : "400",
                                   ok ? "OK" : "client key not allowed", "", ""};
      for (std::size_t i = 0; i < 6; ++i) {
        zmq_send(rep_.get(), parts[i].data(), parts[i].size(), i + 1 < 6 ? ZMQ_SNDMORE : 0);
      }
    }
  }

  Socket rep_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<std::string, std::set<std::string>> allowed_;
};

std::mutex g_zap_mu;

}  // namespace

struct ContextAccess {
  static ZapHandler& zap(Context& c) {
    std::lock_guard<std::mutex> lock(g_zap_mu);
    if (!c.zap_) c.zap_ = std::make_shared<ZapHandler>(c.ctx_);
    return *static_cast<ZapHandler*>(c.zap_.get());
  }
};

namespace transport_detail {

int zmq_type(SocketType t) {
  switch (t) {
    case SocketType::push: return ZMQ_PUSH;
    case SocketType::pull: return ZMQ_PULL;
    case SocketType::pub: return ZMQ_PUB;
    case SocketType::sub: return ZMQ_SUB;
  }
  return ZMQ_PUSH;
}

void configure_socket(Socket& s, const TransportOptions& o, bool sending, Context& ctx) {
  s.set(sending ? ZMQ_SNDHWM : ZMQ_RCVHWM, o.hwm);
  if (o.sndbuf > 0) s.set(ZMQ_SNDBUF, o.sndbuf);
  if (o.rcvbuf > 0) s.set(ZMQ_RCVBUF, o.rcvbuf);
  if (o.curve) {
    if (!has_curve()) throw TransportError("CurveZMQ requested but this libzmq was built without CURVE");
    const CurveOptions& c = *o.curve;
    if (c.server) {
      if (!c.allowed_clients.empty()) s.set(ZMQ_ZAP_DOMAIN, ContextAccess::zap(ctx).add_domain(c.allowed_clients));
      s.set(ZMQ_CURVE_SERVER, 1);
      s.set(ZMQ_CURVE_SECRETKEY, c.keys.secret_key);
    } else {
      if (c.server_public_key.size() != 40) throw ValueError("CURVE client: server_public_key must be 40 Z85 characters");
      s.set(ZMQ_CURVE_SERVERKEY, c.server_public_key);
      s.set(ZMQ_CURVE_PUBLICKEY, c.keys.public_key);
      s.set(ZMQ_CURVE_SECRETKEY, c.keys.secret_key);
    }
  }
}

}  // namespace transport_detail
}  // namespace lclstream
