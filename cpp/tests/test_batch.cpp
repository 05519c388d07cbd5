#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

#include "lclstream/batch.hpp"
#include "lclstream/buffer_pool.hpp"
#include "lclstream/error.hpp"
#include "lclstream/parallel.hpp"

using namespace lclstream;

namespace {
std::vector<std::uint16_t> make_frame(std::size_t n, std::uint16_t seed) {
  std::vector<std::uint16_t> f(n);
  std::iota(f.begin(), f.end(), seed);
  return f;
}
std::span<const std::byte> as_bytes(const std::vector<std::uint16_t>& v) {
  return std::as_bytes(std::span(v));
}
}  // namespace

TEST_CASE("pool buffers are aligned, reused and returned on destruction") {
  BufferPool pool(10000, 2);
  std::byte* first = nullptr;
  {
    auto a = pool.acquire();
    REQUIRE(reinterpret_cast<std::uintptr_t>(a.data()) % 4096 == 0);
    REQUIRE(a.size() == 10000);
    first = a.data();
    REQUIRE(pool.stats().available == 1);
  }
  REQUIRE(pool.stats().available == 2);
  auto b = pool.acquire();
  auto c = pool.acquire();
  REQUIRE((b.data() == first || c.data() == first));
  REQUIRE(pool.stats().allocated == 2);
  REQUIRE_THROWS_AS(pool.acquire(std::chrono::milliseconds(10)), TimeoutError);
  REQUIRE_FALSE(pool.try_acquire());
}

TEST_CASE("a blocked acquire wakes when another thread releases") {
  BufferPool pool(4096, 1);
  auto held = pool.acquire();
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    held.reset();
  });
  auto got = pool.acquire(std::chrono::milliseconds(5000));
  REQUIRE(got);
  t.join();
  REQUIRE(pool.stats().waits >= 1);
}

TEST_CASE("buffers outlive their pool") {
  PooledBuffer keep;
  {
    BufferPool pool(4096, 1);
    keep = pool.acquire();
  }
  std::memset(keep.data(), 7, keep.size());  // ASan would flag a freed buffer
  keep.reset();
}

TEST_CASE("lazy pools allocate on demand up to capacity") {
  BufferPool pool(8192, 3, /*prefault=*/false);
  REQUIRE(pool.stats().allocated == 0);
  auto a = pool.acquire();
  REQUIRE(pool.stats().allocated == 1);
}

TEST_CASE("batch append copies frames contiguously with ids and timestamps") {
  BufferPool pool(3 * 6 * sizeof(std::uint16_t), 1);
  Batch batch(pool, DType::u16, {2, 3}, 3);
  auto f0 = make_frame(6, 0), f1 = make_frame(6, 100);
  batch.append(as_bytes(f0), DType::u16, 10, 1000);
  batch.append(as_bytes(f1), DType::u16, 11, 1001);
  REQUIRE(batch.size() == 2);
  REQUIRE(batch.bytes().size() == 2 * 12);
  REQUIRE(std::memcmp(batch.frame(1).data(), f1.data(), 12) == 0);
  REQUIRE(batch.event_ids() == std::vector<std::uint64_t>{10, 11});
  REQUIRE(batch.timestamps() == std::vector<std::uint64_t>{1000, 1001});
}

TEST_CASE("batch rejects wrong dtype, wrong size and overflow with clear errors") {
  Batch batch(DType::u16, {4}, 1);
  std::vector<std::uint16_t> good(4), bad(5);
  std::vector<float> wrong(4);
  REQUIRE_THROWS_WITH(batch.append(as_bytes(bad), DType::u16, 0, 0),
                      Catch::Contains("frame has 10 bytes, expected 8"));
  REQUIRE_THROWS_AS(batch.append(std::as_bytes(std::span(wrong)), DType::f32, 0, 0), ValueError);
  batch.append(as_bytes(good), DType::u16, 0, 0);
  REQUIRE_THROWS_AS(batch.append(as_bytes(good), DType::u16, 1, 0), CapacityError);
  REQUIRE_THROWS_AS(batch.frame(3), ValueError);
}

TEST_CASE("pool too small for the batch is a ValueError") {
  BufferPool pool(100, 1);
  REQUIRE_THROWS_AS(Batch(pool, DType::f32, {10, 10}, 2), ValueError);
}

TEST_CASE("append_many splits large copies across threads and keeps order") {
  const std::size_t n = 512 * 1024;  // 1 MiB frames
  std::vector<std::vector<std::uint16_t>> frames;
  std::vector<std::span<const std::byte>> views;
  for (int i = 0; i < 3; ++i) frames.push_back(make_frame(n, static_cast<std::uint16_t>(i * 7)));
  for (auto& f : frames) views.push_back(as_bytes(f));
  std::vector<std::uint64_t> ids{1, 2, 3}, ts{4, 5, 6};
  Batch batch(DType::u16, {n}, 4);
  batch.append_many(views, DType::u16, ids, ts, 0);
  REQUIRE(batch.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    REQUIRE(std::memcmp(batch.frame(i).data(), frames[i].data(), n * 2) == 0);
  }
  REQUIRE_THROWS_AS(batch.append_many(views, DType::u16, ids, ts, 0), CapacityError);
}

TEST_CASE("parallel_for runs every task once and propagates exceptions") {
  std::vector<std::atomic<int>> hits(1000);
  parallel_for(hits.size(), 0, [&](std::size_t i) { hits[i].fetch_add(1); });
  for (auto& h : hits) REQUIRE(h.load() == 1);
  REQUIRE_THROWS_AS(parallel_for(100, 0,
                                 [](std::size_t i) {
                                   if (i == 37) throw ValueError("task 37");
                                 }),
                    ValueError);
  // Many concurrent callers share the one pool without deadlock.
  std::vector<std::thread> callers;
  std::atomic<long> sum{0};
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int r = 0; r < 50; ++r) parallel_for(16, 0, [&](std::size_t i) { sum += long(i); });
    });
  }
  for (auto& t : callers) t.join();
  REQUIRE(sum.load() == 4L * 50 * 120);
}

TEST_CASE("cancel wakes a waiter blocked on an exhausted pool with CancelledError") {
  BufferPool pool(4096, 1);
  auto held = pool.acquire();  // a stalled consumer holds the only buffer
  std::atomic<bool> woke{false};
  const auto t0 = std::chrono::steady_clock::now();
  std::thread waiter([&] {
    try {
      (void)pool.acquire();  // no deadline: only cancel() can end this wait
    } catch (const CancelledError&) {
      woke = true;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  pool.cancel();
  waiter.join();
  REQUIRE(woke);
  REQUIRE(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
  REQUIRE(pool.cancelled());
  REQUIRE_THROWS_AS(pool.acquire(), CancelledError);  // later acquisitions are refused too
  held.reset();  // a borrowed buffer still comes back
  REQUIRE(pool.stats().available == 1);
}

TEST_CASE("a pool wait calls its interrupt check between slices and ends when it throws") {
  BufferPool pool(4096, 1);
  auto held = pool.acquire();
  int calls = 0;
  struct Stop {};
  REQUIRE_THROWS_AS(pool.acquire(std::nullopt, [&] {
                      if (++calls == 3) throw Stop{};
                    }, std::chrono::milliseconds(5)),
                    Stop);
  REQUIRE(calls == 3);
  // A Batch waiting on the pool obeys the same deadline.
  REQUIRE_THROWS_AS(Batch(pool, DType::u16, {8}, 1, std::chrono::milliseconds(20)), TimeoutError);
}
