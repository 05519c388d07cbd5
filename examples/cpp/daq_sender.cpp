// A DAQ-style program on the installed lclstream core: fill a batch of detector frames in
// pooled memory, compress each event (bitshuffle + LZ4, HDF5 filter 32008 chunks) into a
// pooled chunk buffer and send it, without copying, as a header frame + payload frame. Here the consumer is a Receiver in the same program (inproc://), which
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
std::string header(std::size_t sequence, const lclstream::Batch& b,
                   const lclstream::CompressedFrames& chunks) {
  std::string h = R"({"format":"lclstream-example","dtype":"uint16","codec":"bslz4","sequence":)";
  h.append(std::to_string(sequence)).append(R"(,"shape":[)").append(std::to_string(b.size()));
  for (auto d : b.frame_shape()) h.append(",").append(std::to_string(d));
  h.append(R"(],"chunk_sizes":[)");
  for (std::size_t i = 0; i < chunks.sizes.size(); ++i) {
    h.append(i ? "," : "").append(std::to_string(chunks.sizes[i]));
  }
  return h.append("]}");
}

/// Reads the chunk sizes back out of the example header.
std::vector<std::size_t> chunk_sizes(std::span<const std::byte> hdr) {
  const std::string s(reinterpret_cast<const char*>(hdr.data()), hdr.size());
  std::vector<std::size_t> out;
  auto pos = s.find("\"chunk_sizes\":[");
  if (pos == std::string::npos) return out;
  pos += 15;
  while (pos < s.size() && s[pos] != ']') {
    std::size_t used = 0;
    out.push_back(std::stoull(s.substr(pos), &used));
    pos += used;
    if (pos < s.size() && s[pos] == ',') ++pos;
  }
  return out;
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
  constexpr std::size_t kFrameBytes = kModules * kRows * kCols * sizeof(std::uint16_t);
  BufferPool pool(kEvents * kFrameBytes, 4);
  const CodecOptions bslz4{};  // bitshuffle + LZ4, the HDF5 32008 layout
  BufferPool chunk_pool(compress_frames_bound(bslz4, kEvents, kFrameBytes, 2), 4);
  std::vector<const std::byte*> sent_addresses;
  std::size_t raw_bytes = 0, compressed_bytes = 0;
  int bad = 0;

  std::thread consumer([&] {
    std::vector<std::uint16_t> decoded(kEvents * kModules * kRows * kCols);
    for (std::size_t k = 0; k < kBatches; ++k) {
      auto frames = receiver.recv();
      const auto payload = frames.at(1).bytes();
      const auto sizes = chunk_sizes(frames.at(0).bytes());
      std::vector<std::size_t> offsets(sizes.size(), 0);
      for (std::size_t i = 1; i < sizes.size(); ++i) offsets[i] = offsets[i - 1] + sizes[i - 1];
      bool ok = frames.size() == 2 && sizes.size() == kEvents;
      if (ok) {
        decompress_frames(payload, offsets, sizes, 2, std::as_writable_bytes(std::span(decoded)),
                          Codec::bslz4, 1);
      }
      const std::size_t id = k * kEvents + 1;  // event 1 of batch k
      const std::size_t off = kModules * kRows * kCols + 7;
      if (!ok || decoded[off] != static_cast<std::uint16_t>(7 + id)) {
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
    // One chunk per event, compressed by all cores into a pooled buffer; the batch's own
    // buffer goes back to its pool as soon as `batch` is dropped.
    auto chunks = std::make_shared<CompressedFrames>(compress_batch(*batch, chunk_pool, bslz4, 0));
    raw_bytes += batch->bytes().size();
    compressed_bytes += chunks->total_bytes();
    const std::string hdr = header(k, *batch, *chunks);
    const std::span<const std::byte> payload(chunks->buffer.data(), chunks->total_bytes());
    if (k == 0) sent_addresses.push_back(payload.data());
    const OutFrame frames[] = {{std::as_bytes(std::span(hdr)), nullptr},  // small header: copied
                               {payload, chunks}};                         // payload: zero copy
    sender.send(frames);
  }
  const std::size_t undelivered = sender.close(std::chrono::seconds(10));
  consumer.join();
  const auto st = sender.stats();
  std::printf("daq_sender: %llu messages, %.1f MiB raw compressed to %.1f MiB (bslz4) and sent "
              "zero-copy, %zu undelivered, pool waits %zu\n",
              static_cast<unsigned long long>(st.messages), static_cast<double>(raw_bytes) / (1 << 20),
              static_cast<double>(compressed_bytes) / (1 << 20), undelivered, pool.stats().waits);
  return (bad == 0 && undelivered == 0 && st.messages == kBatches) ? 0 : 1;
}
