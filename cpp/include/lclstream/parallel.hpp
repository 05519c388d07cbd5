#pragma once
// One process-wide pool of worker threads shared by every kernel, so that calling a
// kernel per event never pays thread start-up, and several pipeline threads can run
// kernels at once without oversubscribing the cores.
#include <cstddef>
#include <functional>

namespace lclstream {

/// Number of hardware threads (at least 1).
unsigned hardware_threads() noexcept;

/// Resolves a user thread count: 0 means all cores; never more than `tasks`, never below 1.
unsigned resolve_threads(int threads, std::size_t tasks) noexcept;

/// Runs fn(i) for i in [0, tasks) on up to `threads` threads (0 = all cores); the caller
/// thread works too. Returns when every task has finished. The first exception thrown by a
/// task is rethrown in the caller after all tasks have stopped.
void parallel_for(std::size_t tasks, int threads, const std::function<void(std::size_t)>& fn);

/// Splits [0, n) into `parts` nearly equal ranges aligned to `align` elements and runs
/// fn(begin, end) for each in parallel.
void parallel_ranges(std::size_t n, int threads, std::size_t align,
                     const std::function<void(std::size_t, std::size_t)>& fn);

}  // namespace lclstream
