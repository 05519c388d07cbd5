// A DAQ-style program on the installed lclstream core: fill a batch of detector frames in
// pooled memory and send it, without copying, as a raw-batch message (header frame +
// payload frame). Here the consumer is a Receiver in the same program (inproc://), which
// checks every message; a real DAQ would connect to tcp://consumer:port instead.
// Exit status 0 means every message arrived intact and the payload was never copied.
#include <lclstream/lclstream.hpp>
#include <lclstream/transport.hpp>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t kRows = 512, kCols = 1024, kModules = 2, kEvents = 4, kBatches = 16;

/// A small self-describing header (a real stream uses the raw-batch CBOR header).
std::string header(std::size_t sequence, const lclstream::Batch& b) {
  std::string h = R"({"format":"lclstream-example","dtype":"uint16","sequence":)";
  h.append(std::to_string(sequence)).append(R"(,"shape":[)").append(std::to_string(b.size()));
  for (auto d : b.frame_shape()) h.append(",").append(std::to_string(d));
  return h.append("]}");
}

void fill(lclstream::Batch& batch, std::size_t first_event) {
  std::vector<std::uint16_t> frame(kModules * kRows * kCols);
  for (std::size_t e = 0; e < kEvents; ++e) {
    const std::uint64_t id = first_event + e;
    for (std::size_t i = 0; i < frame.size(); ++i) frame[i] = static_cast<std::uint16_t>((i + id) & 0xffff);
    batch.append(std::as_bytes(std::span(frame)), lclstream::DType::u16, id, 1'700'000'000'000'000'000ULL + id);
  }
}

}  // namespace

int main() {
  using namespace lclstream;
  auto ctx = std::make_shared<Context>();  // inproc endpoints live in one context
  TransportOptions ropt = TransportOptions::pull_bind();
  ropt.context = ctx;
  ropt.timeout = std::chrono::seconds(10);
  Receiver receiver({"inproc://daq"}, ropt);

  TransportOptions sopt;  // push, connect: the DAQ streams to a consumer that binds
  sopt.context = ctx;
  sopt.timeout = std::chrono::seconds(10);
  Sender sender({"inproc://daq"}, sopt);

  // Pool: a few batch buffers, touched once. A batch returns to the pool when libzmq is
  // done with it (the Sender's free callback drops the last reference).
  BufferPool pool(kEvents * kModules * kRows * kCols * sizeof(std::uint16_t), 4);
  std::vector<const std::byte*> sent_addresses;
  int bad = 0;

  std::thread consumer([&] {
    for (std::size_t k = 0; k < kBatches; ++k) {
      auto frames = receiver.recv();
      const auto payload = frames.at(1).bytes();
      const auto* px = reinterpret_cast<const std::uint16_t*>(payload.data());
      const std::size_t id = k * kEvents + 1;  // event 1 of batch k
      const std::size_t off = kModules * kRows * kCols + 7;
      if (frames.size() != 2 || payload.size() != pool.buffer_bytes() || px[off] != static_cast<std::uint16_t>(7 + id)) {
        std::fprintf(stderr, "daq_sender: batch %zu arrived wrong\n", k);
        ++bad;
      }
      if (k == 0 && payload.data() != sent_addresses.at(0)) {
        std::fprintf(stderr, "daq_sender: payload was copied\n");
        ++bad;
      }
    }
  });

  for (std::size_t k = 0; k < kBatches; ++k) {
    auto batch = std::make_shared<Batch>(pool, DType::u16, std::vector<std::size_t>{kModules, kRows, kCols}, kEvents);
    fill(*batch, k * kEvents);
    // (Compression goes here once the codec lands: compress the batch's events into a
    //  pooled chunk buffer and send that instead of batch->bytes().)
    const std::string hdr = header(k, *batch);
    const auto payload = std::as_bytes(batch->bytes());
    if (k == 0) sent_addresses.push_back(payload.data());
    const OutFrame frames[] = {{std::as_bytes(std::span(hdr)), nullptr},  // small header: copied
                               {payload, batch}};                          // payload: zero copy
    sender.send(frames);
  }
  const std::size_t undelivered = sender.close(std::chrono::seconds(10));
  consumer.join();
  const auto st = sender.stats();
  std::printf("daq_sender: %llu messages, %.1f MiB sent zero-copy, %zu undelivered, pool waits %zu\n",
              static_cast<unsigned long long>(st.messages), static_cast<double>(st.bytes) / (1 << 20),
              undelivered, pool.stats().waits);
  return (bad == 0 && undelivered == 0 && st.messages == kBatches) ? 0 : 1;
}
