#include "lclstream/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace lclstream {
namespace {

struct Job {
  const std::function<void(std::size_t)>* fn = nullptr;
  std::size_t tasks = 0;
  std::atomic<std::size_t> next{0};
  unsigned max_workers = 0;            // helpers allowed besides the caller
  std::atomic<unsigned> workers{0};
  std::mutex mu;
  std::condition_variable cv;
  std::exception_ptr error;

  // Runs tasks until none is left to hand out.
  void work() {
    for (;;) {
      const std::size_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= tasks) return;
      try {
        (*fn)(i);
      } catch (...) {
        std::lock_guard lock(mu);
        if (!error) error = std::current_exception();
        next.store(tasks, std::memory_order_relaxed);  // stop handing out work
      }
    }
  }
};

class ThreadPool {
 public:
  explicit ThreadPool(unsigned n) {
    threads_.reserve(n);
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~ThreadPool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void run(const std::shared_ptr<Job>& job) {
    if (job->max_workers > 0) {
      {
        std::lock_guard lock(mu_);
        queue_.push_back(job);
      }
      if (job->max_workers == 1) cv_.notify_one(); else cv_.notify_all();
    }
    job->work();
    // Every task has been handed out; helpers may still be running theirs. A helper that
    // joins later finds nothing to do, so waiting for the helpers inside work() suffices.
    std::unique_lock lock(job->mu);
    job->cv.wait(lock, [&] { return job->workers.load() == 0; });
  }

 private:
  void loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        job = queue_.front();
        if (job->workers.fetch_add(1) + 1 >= job->max_workers || job->next.load() >= job->tasks) {
          queue_.pop_front();  // enough helpers joined, or nothing left: others go elsewhere
        }
      }
      if (job->workers.load() > job->max_workers) {
        leave(*job);
        continue;
      }
      job->work();
      leave(*job);
    }
  }
  static void leave(Job& job) {
    std::lock_guard lock(job.mu);
    job.workers.fetch_sub(1);
    job.cv.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
};

ThreadPool& global_pool() {
  static ThreadPool pool(hardware_threads() > 1 ? hardware_threads() - 1 : 1);
  return pool;
}

}  // namespace

unsigned hardware_threads() noexcept {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

unsigned resolve_threads(int threads, std::size_t tasks) noexcept {
  std::size_t n = threads <= 0 ? hardware_threads() : static_cast<unsigned>(threads);
  n = std::min(n, tasks);
  return n == 0 ? 1u : static_cast<unsigned>(n);
}

void parallel_for(std::size_t tasks, int threads, const std::function<void(std::size_t)>& fn) {
  if (tasks == 0) return;
  const unsigned n = resolve_threads(threads, tasks);
  if (n == 1) {
    for (std::size_t i = 0; i < tasks; ++i) fn(i);
    return;
  }
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->tasks = tasks;
  job->max_workers = n - 1;
  global_pool().run(job);
  if (job->error) std::rethrow_exception(job->error);
}

void parallel_ranges(std::size_t n, int threads, std::size_t align,
                     const std::function<void(std::size_t, std::size_t)>& fn) {
  if (n == 0) return;
  if (align == 0) align = 1;
  const std::size_t units = (n + align - 1) / align;
  const unsigned parts = resolve_threads(threads, units);
  const std::size_t per = (units + parts - 1) / parts;
  parallel_for(parts, static_cast<int>(parts), [&](std::size_t p) {
    const std::size_t b = std::min(n, p * per * align);
    const std::size_t e = std::min(n, (p + 1) * per * align);
    if (b < e) fn(b, e);
  });
}

}  // namespace lclstream
