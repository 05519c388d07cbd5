// Zero-copy hand-off of outgoing frames to libzmq (see frames_out.hpp).
#include "transport/frames_out.hpp"

#include <cerrno>
#include <utility>
#include <vector>

#include "lclstream/error.hpp"
#include "transport/socket.hpp"

namespace lclstream::transport_detail {
namespace {

/// What the free callback releases: the owner of the bytes and, for a message's last
/// frame, the tracker to tell.
struct Hint {
  std::shared_ptr<const void> owner;
  std::shared_ptr<Tracker> tracker;
};

// Runs when libzmq is done with the bytes, on whichever thread that is (often an I/O
// thread): releases the owner first, then tells the tracker, so that a close() that saw
// in_flight reach 0 knows every owner has been released.
extern "C" void lclstream_free_hint(void* /*data*/, void* hint) noexcept {
  std::unique_ptr<Hint> h(static_cast<Hint*>(hint));
  std::shared_ptr<Tracker> t = std::move(h->tracker);
  h.reset();
  if (t) t->done();
}

/// Initialises `m` to send `f` without copying (a null owner gets a private copy).
void init_msg(zmq_msg_t* m, const OutFrame& f, const std::shared_ptr<Tracker>& t) {
  std::shared_ptr<const void> owner = f.owner;
  const std::byte* data = f.bytes.data();
  if (!owner) {
    auto copy = std::make_shared<std::vector<std::byte>>(f.bytes.begin(), f.bytes.end());
    data = copy->data();
    owner = std::move(copy);
  }
  auto hint = std::make_unique<Hint>(Hint{std::move(owner), t});
  if (t) t->in_flight.fetch_add(1, std::memory_order_acq_rel);
  // libzmq never writes through this pointer on the send path.
  if (zmq_msg_init_data(m, const_cast<std::byte*>(data), f.bytes.size(), &lclstream_free_hint, hint.get()) != 0) {
    if (t) t->in_flight.fetch_sub(1, std::memory_order_acq_rel);
    throw TransportError(zerr("zmq_msg_init_data"));
  }
  hint.release();  // NOLINT: owned by libzmq now, freed by lclstream_free_hint
}

}  // namespace

bool send_now(void* sock, std::span<const OutFrame> frames, const std::shared_ptr<Tracker>& t,
              const std::string& where) {
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const bool last = i + 1 == frames.size();
    zmq_msg_t m;
    init_msg(&m, frames[i], last ? t : nullptr);
    if (zmq_msg_send(&m, sock, ZMQ_DONTWAIT | (last ? 0 : ZMQ_SNDMORE)) < 0) {
      const int e = zmq_errno();
      zmq_msg_close(&m);  // a failed send leaves the message ours: this runs the free callback
      if (e == EAGAIN && i == 0) return false;
      throw TransportError(std::string("send to ") + where + ": " + zmq_strerror(e));
    }
  }
  return true;
}

}  // namespace lclstream::transport_detail
