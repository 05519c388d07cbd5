// Fills a batch of synthetic Jungfrau-module frames from a pool and checks it, using only
// the installed lclstream core. Exit status 0 means the installed package works.
#include <lclstream/lclstream.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

int main() {
  using namespace lclstream;
  constexpr std::size_t kRows = 512, kCols = 1024, kEvents = 4;
  BufferPool pool(kEvents * kRows * kCols * sizeof(std::uint16_t), 2);
  Batch batch(pool, DType::u16, {1, kRows, kCols}, kEvents);

  std::vector<std::uint16_t> frame(kRows * kCols);
  for (std::size_t e = 0; e < kEvents; ++e) {
    for (std::size_t i = 0; i < frame.size(); ++i) frame[i] = static_cast<std::uint16_t>(i + e);
    batch.append(std::as_bytes(std::span(frame)), DType::u16, e, 1000 + e);
  }
  const auto* last = reinterpret_cast<const std::uint16_t*>(batch.frame(kEvents - 1).data());
  if (batch.size() != kEvents || last[5] != 5 + kEvents - 1) {
    std::fprintf(stderr, "batch_example: unexpected batch contents\n");
    return 1;
  }
  try {
    batch.append(std::as_bytes(std::span(frame)), DType::u16, 99, 0);
    std::fprintf(stderr, "batch_example: overflow was not detected\n");
    return 1;
  } catch (const CapacityError& e) {
    std::printf("overflow detected as expected: %s\n", e.what());
  }
  std::printf("lclstream %.*s (%.*s): batch of %zu events, %zu bytes\n",
              static_cast<int>(version().size()), version().data(),
              static_cast<int>(isa_name(active_isa()).size()), isa_name(active_isa()).data(),
              batch.size(), batch.bytes().size());
  return 0;
}
