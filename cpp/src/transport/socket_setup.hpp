#pragma once
// Socket options every transport unit applies the same way: high-water marks, kernel
// buffers, and CurveZMQ (with a ZAP handler per Context for client allow-lists).
#include "lclstream/transport.hpp"
#include "transport/socket.hpp"

namespace lclstream::transport_detail {

/// libzmq's socket type for ours.
int zmq_type(SocketType t);

/// Applies `o`'s hwm, buffer sizes and CURVE settings to `s` (a sending socket when
/// `sending`); a CURVE server with allowed_clients registers them with `ctx`'s ZAP handler.
void configure_socket(Socket& s, const TransportOptions& o, bool sending, Context& ctx);

}  // namespace lclstream::transport_detail
