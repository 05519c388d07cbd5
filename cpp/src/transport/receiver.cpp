// Receiver (PULL or SUB) over one socket: frames received without copies, each kept
// alive by its libzmq message (see transport.hpp).
#include <zmq.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>

#include "lclstream/error.hpp"
#include "lclstream/transport.hpp"
#include "transport/socket.hpp"
#include "transport/socket_setup.hpp"

namespace lclstream {
using namespace transport_detail;

struct Frame::Msg {
  zmq_msg_t m;
  Msg() { zmq_msg_init(&m); }
  ~Msg() { zmq_msg_close(&m); }
  Msg(const Msg&) = delete;
  Msg& operator=(const Msg&) = delete;
};

std::span<const std::byte> Frame::bytes() const noexcept {
  if (!msg_) return {};
  return {static_cast<const std::byte*>(zmq_msg_data(&msg_->m)), zmq_msg_size(&msg_->m)};
}

struct Receiver::Impl {
  TransportOptions opt;
  std::shared_ptr<Context> ctx;
  Socket sock;  // guarded by sock_mu: one recv at a time; close() may come from any thread
  std::vector<std::string> endpoints;
  std::mutex sock_mu;
  std::atomic<bool> closing{false};
  std::atomic<std::uint64_t> messages{0};
  std::atomic<std::uint64_t> bytes{0};
};

Receiver::Receiver(std::vector<std::string> endpoints, TransportOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.opt = std::move(options);
  im.ctx = im.opt.context ? im.opt.context : Context::global();
  const SocketType t = im.opt.socket_type;
  if (t != SocketType::pull && t != SocketType::sub) {
    throw ValueError("Receiver: socket type must be pull or sub, not " + std::string(socket_type_name(t)));
  }
  if (endpoints.empty()) throw ValueError("Receiver: no endpoint given");
  if (im.opt.reuse_buffers) reuse_message_buffers();
  im.sock = Socket(im.ctx->handle(), zmq_type(t));
  configure_socket(im.sock, im.opt, false, *im.ctx);
  if (t == SocketType::sub) {
    for (const auto& prefix : im.opt.subscribe) im.sock.set(ZMQ_SUBSCRIBE, prefix);
  }
  for (const auto& e : endpoints) im.endpoints.push_back(im.sock.attach(e, im.opt.bind));
}

Receiver::~Receiver() { close(); }

std::optional<std::vector<Frame>> Receiver::try_recv(std::optional<milliseconds> timeout) {
  Impl& im = *impl_;
  std::lock_guard<std::mutex> lock(im.sock_mu);
  if (!im.sock || im.closing) throw TransportError("recv on a closed Receiver (" + join(im.endpoints) + ")");
  const auto deadline = deadline_of(timeout);
  std::vector<Frame> frames;
  auto msg = std::make_shared<Frame::Msg>();
  // Try first, poll only when nothing is there (saves a system call per message).
  while (zmq_msg_recv(&msg->m, im.sock.get(), ZMQ_DONTWAIT) < 0) {
    if (zmq_errno() != EAGAIN && zmq_errno() != EINTR) throw TransportError(zerr("recv on " + join(im.endpoints)));
    if (im.closing) throw TransportError("Receiver closed while a recv was waiting (" + join(im.endpoints) + ")");
    if (im.opt.interrupt) im.opt.interrupt();
    const long wait = slice_ms(deadline, im.opt.slice);
    if (wait < 0) return std::nullopt;
    zmq_pollitem_t item{im.sock.get(), 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, wait) < 0 && zmq_errno() != EINTR) throw TransportError(zerr("zmq_poll"));
  }
  for (;;) {
    const bool more = zmq_msg_more(&msg->m) != 0;
    im.bytes += zmq_msg_size(&msg->m);
    frames.push_back(Frame(std::move(msg)));
    if (!more) break;
    msg = std::make_shared<Frame::Msg>();
    if (zmq_msg_recv(&msg->m, im.sock.get(), 0) < 0) throw TransportError(zerr("recv on " + join(im.endpoints)));
  }
  ++im.messages;
  return frames;
}

std::vector<Frame> Receiver::recv(std::optional<milliseconds> timeout) {
  const auto t = timeout ? timeout : impl_->opt.timeout;
  auto r = try_recv(t);
  if (!r) {
    throw TimeoutError("recv: no message within " + seconds_text(*t) + " on " + join(impl_->endpoints));
  }
  return std::move(*r);
}

void Receiver::close() noexcept {
  impl_->closing = true;  // a recv waiting on another thread gives up at its next slice
  std::lock_guard<std::mutex> lock(impl_->sock_mu);
  impl_->sock.reset(0);
}

ReceiverStats Receiver::stats() const { return {impl_->messages.load(), impl_->bytes.load()}; }
const std::vector<std::string>& Receiver::endpoints() const noexcept { return impl_->endpoints; }
bool Receiver::closed() const noexcept { return impl_->closing.load(); }
bool Receiver::curve_server() const noexcept { return impl_->opt.curve && impl_->opt.curve->server; }
bool Receiver::curve_allow_list_set() const noexcept {
  return curve_server() && !impl_->opt.curve->allowed_clients.empty();
}

}  // namespace lclstream
