// Transport over real sockets (inproc, ipc, tcp loopback); every wait is bounded.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lclstream/buffer_pool.hpp"
#include "lclstream/error.hpp"
#include "lclstream/transport.hpp"

using namespace lclstream;
using namespace std::chrono_literals;

namespace {

TransportOptions opts(SocketType t, bool bind, std::chrono::milliseconds timeout = 5000ms) {
  TransportOptions o;
  o.socket_type = t;
  o.bind = bind;
  o.timeout = timeout;
  return o;
}

std::string text(const Frame& f) {
  return {reinterpret_cast<const char*>(f.bytes().data()), f.size()};
}

OutFrame frame_of(const std::string& s) {  // copied (null owner)
  return {std::as_bytes(std::span(s.data(), s.size())), nullptr};
}

/// A pooled buffer whose release we can observe from the test thread.
struct Owned {
  PooledBuffer buf;
  std::atomic<int>* released = nullptr;
  ~Owned() {
    if (released != nullptr) released->fetch_add(1);
  }
};

void wait_peers(const Sender& s, std::uint64_t n) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (s.stats().peers < n && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  REQUIRE(s.stats().peers == n);
}

}  // namespace

TEST_CASE("inproc send passes the buffer itself (zero copy) and releases its owner", "[transport]") {
  auto ctx = std::make_shared<Context>();
  auto ro = opts(SocketType::pull, true);
  ro.context = ctx;
  auto so = opts(SocketType::push, false);
  so.context = ctx;
  {
    Receiver r({"inproc://zero-copy"}, ro);
    Sender s({"inproc://zero-copy"}, so);
    BufferPool pool(1 << 20, 2);
    std::atomic<int> released{0};
    {
      auto owned = std::make_shared<Owned>();
      owned->buf = pool.acquire();
      owned->released = &released;
      std::memset(owned->buf.data(), 7, owned->buf.size());
      const std::byte* addr = owned->buf.data();
      REQUIRE(s.send(OutFrame{std::span<const std::byte>(addr, 1 << 20), std::move(owned)}));
      auto frames = r.recv();
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].bytes().data() == addr);  // the receiver sees our very buffer
      CHECK(frames[0].size() == std::size_t{1} << 20);
      CHECK(pool.stats().available == 1);  // still out: libzmq (the receiver) holds it
      CHECK(released.load() == 0);
      CHECK(s.stats().in_flight == 1);
    }
    CHECK(released.load() == 1);
    CHECK(pool.stats().available == 2);  // back in the pool once the frame is gone
    CHECK(s.stats().in_flight == 0);
    CHECK(s.close() == 0);
  }
}

TEST_CASE("multipart framing and pyzmq-style single parts over ipc", "[transport]") {
  std::string url = "ipc:///tmp/lclstream-test-transport-";
  url.append(std::to_string(::getpid())).append(".ipc");
  Receiver r({url}, opts(SocketType::pull, true));
  Sender s({url}, opts(SocketType::push, false));
  const std::string h = "header", p(100000, 'p');
  const OutFrame two[] = {frame_of(h), frame_of(p)};
  REQUIRE(s.send(two));
  REQUIRE(s.send(frame_of("single")));
  auto m = r.recv();
  REQUIRE(m.size() == 2);
  CHECK(text(m[0]) == h);
  CHECK(text(m[1]) == p);
  auto m2 = r.recv();
  REQUIRE(m2.size() == 1);
  CHECK(text(m2[0]) == "single");
  CHECK(r.stats().messages == 2);
  CHECK(s.close(1000ms) == 0);
}

TEST_CASE("push round-robins over several consumers; broadcast reaches each once", "[transport]") {
  std::vector<std::unique_ptr<Receiver>> rs;
  std::vector<std::string> eps;
  for (int i = 0; i < 3; ++i) {
    rs.push_back(std::make_unique<Receiver>(std::vector<std::string>{"tcp://127.0.0.1:*"}, opts(SocketType::pull, true)));
    eps.push_back(rs.back()->endpoints()[0]);
    CHECK(eps.back().find("tcp://127.0.0.1:") == 0);
    CHECK(eps.back().find('*') == std::string::npos);
  }
  Sender s(eps, opts(SocketType::push, false));
  wait_peers(s, 3);
  for (int k = 0; k < 30; ++k) {
    std::string m = "m";
    m.append(std::to_string(k));
    s.send(frame_of(m));
  }
  const std::string end_text = "END";
  const OutFrame end[] = {frame_of(end_text)};
  CHECK(s.broadcast(end) == 3);
  CHECK(s.close() == 0);
  std::multiset<std::string> all;
  for (auto& r : rs) {
    int n = 0;
    for (;;) {
      auto m = r->recv(2000ms);
      if (text(m[0]) == "END") break;
      all.insert(text(m[0]));
      ++n;
    }
    CHECK(n == 10);
  }
  CHECK(all.size() == 30);
  CHECK(std::set<std::string>(all.begin(), all.end()).size() == 30);
}

TEST_CASE("unreachable endpoint: send times out naming it, nothing hangs", "[transport]") {
  Sender s({"tcp://127.0.0.1:9"}, opts(SocketType::push, false, 200ms));
  const auto t0 = std::chrono::steady_clock::now();
  try {
    s.send(frame_of("x"));
    FAIL("send did not time out");
  } catch (const TimeoutError& e) {
    CHECK(std::string(e.what()).find("tcp://127.0.0.1:9") != std::string::npos);
  }
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
  CHECK(s.close(100ms) == 0);
  CHECK_THROWS_AS(s.send(frame_of("x")), TransportError);
  CHECK_THROWS_AS(Sender({"bogus://x"}, opts(SocketType::push, false)), TransportError);
  CHECK_THROWS_AS(Sender({"tcp://127.0.0.1:9"}, opts(SocketType::pull, false)), ValueError);
}

TEST_CASE("receiver timeout and interrupt check", "[transport]") {
  auto o = opts(SocketType::pull, true, 100ms);
  int calls = 0;
  o.interrupt = [&calls] {
    if (++calls == 3) throw InterruptedError("stop");
  };
  o.slice = 10ms;
  Receiver r({"tcp://127.0.0.1:*"}, o);
  CHECK_THROWS_AS(r.recv(std::nullopt), InterruptedError);  // interrupt wins before the deadline
  calls = -1000;
  CHECK_THROWS_AS(r.recv(50ms), TimeoutError);
  CHECK_FALSE(r.try_recv(20ms).has_value());
}

TEST_CASE("backpressure: push blocks at the high-water mark, close delivers the rest", "[transport]") {
  auto ro = opts(SocketType::pull, true);
  ro.hwm = 2;
  ro.rcvbuf = 65536;
  Receiver r({"tcp://127.0.0.1:*"}, ro);
  auto so = opts(SocketType::push, false, 300ms);
  so.hwm = 2;
  so.sndbuf = 65536;
  std::vector<std::byte> payload(1 << 20, std::byte{1});  // outlives the sender
  Sender s(r.endpoints(), so);
  int sent = 0;
  CHECK_THROWS_AS(
      [&] {
        for (int i = 0; i < 100; ++i) {
          s.send(OutFrame{payload, std::make_shared<int>(i)});
          ++sent;
        }
      }(),
      TimeoutError);
  CHECK(sent < 20);
  std::thread reader([&] {
    for (int i = 0; i < sent; ++i) r.recv(5000ms);
  });
  CHECK(s.close(5000ms) == 0);
  reader.join();
  CHECK(s.stats().dropped == 0);
}

TEST_CASE("pub never blocks and counts what it drops", "[transport]") {
  auto po = opts(SocketType::pub, true);
  po.hwm = 2;
  po.sndbuf = 65536;
  std::vector<std::byte> big(1 << 20);  // outlives the sender
  Sender s({"tcp://127.0.0.1:*"}, po);
  auto so = opts(SocketType::sub, false);
  so.hwm = 2;
  so.rcvbuf = 65536;
  Receiver sub(s.endpoints(), so);
  // Wait for the subscription to arrive.
  for (int i = 0; i < 200 && !sub.try_recv(0ms); ++i) {
    s.send(frame_of("probe"));
    std::this_thread::sleep_for(10ms);
  }
  while (sub.try_recv(100ms)) {
  }
  const auto base = s.stats();
  auto owner = std::make_shared<int>(0);
  int ok = 0;
  for (int i = 0; i < 100; ++i) ok += s.send(OutFrame{big, owner}) ? 1 : 0;
  const auto st = s.stats();
  CHECK(st.dropped - base.dropped == static_cast<std::uint64_t>(100 - ok));
  CHECK(st.dropped > base.dropped);
  int got = 0;
  while (sub.try_recv(500ms)) ++got;
  CHECK(got == ok);
  s.close(1000ms);
}

TEST_CASE("CurveZMQ: right key delivers, wrong key delivers nothing", "[transport]") {
  if (!has_curve()) {
    WARN("skipped: libzmq built without CURVE");
    return;
  }
  const CurveKeyPair server = curve_keypair(), client = curve_keypair(), impostor = curve_keypair();
  CHECK(server.public_key.size() == 40);
  auto ro = opts(SocketType::pull, true);
  ro.curve = CurveOptions{true, server, "", {}};
  Receiver r({"tcp://127.0.0.1:*"}, ro);
  {
    auto so = opts(SocketType::push, false, 300ms);
    so.curve = CurveOptions{false, client, impostor.public_key, {}};
    Sender bad(r.endpoints(), so);
    CHECK_THROWS_AS(bad.send(frame_of("x")), TimeoutError);
    CHECK_FALSE(r.try_recv(200ms).has_value());
  }
  auto so = opts(SocketType::push, false);
  so.curve = CurveOptions{false, client, server.public_key, {}};
  Sender good(r.endpoints(), so);
  good.send(frame_of("secret"));
  CHECK(text(r.recv()[0]) == "secret");
}

TEST_CASE("CurveZMQ client authentication: only allowed client keys get through", "[transport]") {
  if (!has_curve()) {
    WARN("skipped: libzmq built without CURVE");
    return;
  }
  auto ctx = std::make_shared<Context>();  // its ZAP handler must stop before the context ends
  const CurveKeyPair server = curve_keypair(), allowed = curve_keypair(), stranger = curve_keypair();
  auto ro = opts(SocketType::pull, true);
  ro.context = ctx;
  ro.curve = CurveOptions{true, server, "", {allowed.public_key}};
  Receiver r({"tcp://127.0.0.1:*"}, ro);
  {
    auto so = opts(SocketType::push, false, 300ms);
    so.context = ctx;
    so.curve = CurveOptions{false, stranger, server.public_key, {}};
    Sender bad(r.endpoints(), so);
    CHECK_THROWS_AS(bad.send(frame_of("x")), TimeoutError);
    CHECK_FALSE(r.try_recv(200ms).has_value());
  }
  auto so = opts(SocketType::push, false);
  so.context = ctx;
  so.curve = CurveOptions{false, allowed, server.public_key, {}};
  Sender good(r.endpoints(), so);
  good.send(frame_of("for you"));
  CHECK(text(r.recv()[0]) == "for you");
  CHECK_THROWS_AS(([&] {
                    auto o = opts(SocketType::pull, true);
                    o.context = ctx;
                    o.curve = CurveOptions{true, server, "", {"not-a-key"}};
                    Receiver bad_cfg({"tcp://127.0.0.1:*"}, o);
                  }()),
                  ValueError);
}

TEST_CASE("binding push sender: broadcast reaches every connected consumer once", "[transport]") {
  std::vector<std::byte> payload(1 << 20);  // outlives the sender (and so libzmq's use of it)
  auto so = opts(SocketType::push, true);
  so.hwm = 1;
  so.sndbuf = 65536;
  Sender s({"tcp://127.0.0.1:*"}, so);
  std::vector<std::unique_ptr<Receiver>> rs;
  for (int i = 0; i < 2; ++i) {
    auto ro = opts(SocketType::pull, false);
    ro.hwm = 1;
    ro.rcvbuf = 65536;
    rs.push_back(std::make_unique<Receiver>(s.endpoints(), ro));
  }
  wait_peers(s, 2);
  std::atomic<int> ends[2] = {0, 0};
  std::atomic<int> data{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) {
    readers.emplace_back([&, i] {
      for (;;) {
        auto m = rs[i]->recv(5000ms);
        if (m[0].size() == 3) {
          ++ends[i];
          break;
        }
        ++data;
        if (i == 1) std::this_thread::sleep_for(20ms);  // a slow consumer: its queue fills
      }
      if (rs[i]->try_recv(300ms)) ++ends[i];  // nothing may follow the end message
    });
  }
  auto owner = std::make_shared<int>(0);
  for (int k = 0; k < 12; ++k) s.send(OutFrame{payload, owner});
  const std::string end_text = "END";
  const OutFrame end[] = {frame_of(end_text)};
  CHECK(s.broadcast(end) == 2);
  for (auto& t : readers) t.join();
  CHECK(ends[0] == 1);
  CHECK(ends[1] == 1);
  CHECK(data == 12);
}

TEST_CASE("binding push sender survives 2000 TCP connect/close cycles, then streams", "[transport]") {
  // A port scanner or a health check: each cycle emits two monitor events. Read only at
  // broadcast()/stats(), ~1,100 cycles filled the monitor's queue and froze libzmq's I/O thread.
  auto so = opts(SocketType::push, true, 5000ms);
  Sender s({"tcp://127.0.0.1:*"}, so);
  const std::string ep = s.endpoints()[0];
  const int port = std::stoi(ep.substr(ep.rfind(':') + 1));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 2000; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    ::close(fd);
  }
  Receiver r(s.endpoints(), opts(SocketType::pull, false));
  const std::string msg = "after the scan";
  for (int k = 0; k < 20; ++k) s.send(frame_of(msg));
  for (int k = 0; k < 20; ++k) CHECK(text(r.recv(5000ms)[0]) == msg);
  const std::string end_text = "END";
  const OutFrame end[] = {frame_of(end_text)};
  CHECK(s.broadcast(end) == 1);
  CHECK(text(r.recv(5000ms)[0]) == end_text);
  CHECK(s.close(5000ms) == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < 60s);
}

TEST_CASE("a Sender with no timeout, dropped while a message is undelivered, does not block", "[transport]") {
  const std::string ep = "inproc://lclstream-test-linger-" + std::to_string(::getpid());
  Receiver r({ep}, opts(SocketType::pull, true));  // never reads: inproc holds the message
  const auto t0 = std::chrono::steady_clock::now();
  {
    TransportOptions so = opts(SocketType::push, false);
    so.timeout = std::nullopt;
    Sender s({ep}, so);
    const std::string msg = "never read";
    s.send(frame_of(msg));
  }  // ~Sender: bounded by kDestructorLinger
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took < kDestructorLinger + 2s);
}
