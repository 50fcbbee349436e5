// A small persistent thread pool for the kernels' parallel loops.
//
// parallel_for(n, fn) runs fn(i) for i in [0, n) on the pool's workers and the calling
// thread, and returns when all are done. Several threads may call parallel_for on the same
// pool at once (a model shared between threads): their tasks interleave in one queue and
// each caller waits only for its own. Exceptions thrown by fn are rethrown in the caller.
// parallel_for_slots(n, fn) runs fn(i, slot) the same way, `slot` numbering the threads that
// take part in this one call (0 .. slot_count - 1): a thread keeps its slot for the whole call
// and no two threads share one, so a task may use its slot's buffers (Workspace::slots,
// buffer.hpp) without locks, whatever other calls run on the pool at the same time.
//
// The pool is a model's compute context: its threads, and the instruction-set level (Isa)
// its kernels run, chosen once when the model is loaded (isa_of).
//
// Waiting spins a little before it sleeps (kSpin): a worker, for the next call's tasks; a
// caller, for its helpers' last tasks. A model makes ~15 parallel calls per layer, one after
// the other, and waking a sleeping thread took ~50 us on the 2-core VMs this was measured on
// (bench/pool_bench.cpp): ~2% of an image, ~10% of a text. After kSpin without work a thread
// sleeps on a condition variable.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "../errors.hpp"
#include "../limits.hpp"
#include "cpu.hpp"

ALTCLIP_INTRINSIC_WARNINGS_OFF
namespace altclip::kernels {

class ThreadPool {
public:
    /// num_threads: total threads doing work, the caller included (0 = all cores), at most
    /// kMaxThreads (else InvalidArgument). isa: the kernels' level (cpu_info().effective(cap) for
    /// a model). When the system cannot start a thread, the ones started are joined and the
    /// std::system_error goes on (detail::make_thread_pool turns it into a ResourceError).
    /// spin: how long a waiting thread polls before it sleeps (kSpin; zero: sleep at once,
    /// bench/pool_bench.cpp compares the two).
    explicit ThreadPool(int num_threads = 0, Isa isa = cpu_info().effective(), std::chrono::microseconds spin = kSpin)
        : isa_(isa), spin_(spin) {
        if (num_threads > kMaxThreads) {
            throw InvalidArgument("num_threads = " + std::to_string(num_threads) + " exceeds the limit of " +
                                  std::to_string(kMaxThreads) + " (kMaxThreads); use 0 for one thread per core");
        }
        if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        size_ = num_threads;
        try {
            for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { work(); });
        } catch (...) {  // std::system_error (detail::make_thread_pool says what to do): join those started
            stop_workers();
            throw;
        }
    }
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;
    ~ThreadPool() { stop_workers(); }

    int size() const { return size_; }
    /// The instruction-set level of the kernels run with this pool.
    Isa isa() const { return isa_; }

    template <class Fn>
    void parallel_for(std::int64_t n, Fn&& fn) {
        parallel_for_slots(n, [&fn](std::int64_t i, int) { fn(i); });
    }

    /// The threads (slots) that a call of n tasks runs on: at most min(n, size()).
    int slot_count(std::int64_t n) const { return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(n, size_))); }

    /// fn(i, slot) for i in [0, n), slot < slot_count(n): see the top of this file.
    template <class Fn>
    void parallel_for_slots(std::int64_t n, Fn&& fn) {
        if (n <= 0) return;
        if (n == 1 || size_ == 1) {
            for (std::int64_t i = 0; i < n; ++i) fn(i, 0);
            return;
        }
        auto job = std::make_shared<Job>();
        job->n = n;
        job->fn = [&fn](std::int64_t i, int slot) { fn(i, slot); };
        // One queue entry per helper; every participant pulls indices from the job's counter.
        const int helpers = static_cast<int>(std::min<std::int64_t>(n - 1, size_ - 1));
        {
            std::lock_guard<std::mutex> lock(mutex_);
            for (int h = 0; h < helpers; ++h) queue_.push_back(job);
            queued_.store(queue_.size(), std::memory_order_release);
        }
        if (helpers == 1) wake_.notify_one(); else wake_.notify_all();
        run(*job);
        auto done = [&] { return job->finished.load(std::memory_order_acquire) == job->n; };
        spin(done);
        std::unique_lock<std::mutex> lock(job->mutex);  // job->error: set before the last count, under it
        job->done_cv.wait(lock, done);                  // (at once when the spin saw the count complete)
        // The exception moves here under the mutex, as it moved into the job (run): no helper
        // holds it once the count is complete, so no helper frees it while it is handled here.
        const std::exception_ptr error = std::move(job->error);
        lock.unlock();
        if (error) std::rethrow_exception(error);
    }

    /// How long a waiting thread spins before it sleeps.
    static constexpr std::chrono::microseconds kSpin{200};

private:
    struct Job {
        std::int64_t n = 0;
        std::function<void(std::int64_t, int)> fn;
        std::atomic<std::int64_t> next{0};
        std::atomic<int> slots{0};  // slots handed out: one per thread that took a task
        std::atomic<std::int64_t> finished{0};  // tasks done: changed under mutex, read by a spinning caller
        std::exception_ptr error;   // guarded by mutex
        std::mutex mutex;
        std::condition_variable done_cv;
    };

    static void run(Job& job) {
        std::int64_t count = 0;
        std::exception_ptr error;
        int slot = -1;  // taken with the first task: the caller and at most n - 1 helpers do
        for (std::int64_t i; (i = job.next.fetch_add(1)) < job.n;) {
            if (slot < 0) slot = job.slots.fetch_add(1);
            try {
                job.fn(i, slot);
            } catch (...) {
                if (!error) error = std::current_exception();
            }
            ++count;
        }
        if (count == 0) return;
        std::lock_guard<std::mutex> lock(job.mutex);
        if (error && !job.error) job.error = std::move(error);
        if (job.finished.fetch_add(count, std::memory_order_acq_rel) + count == job.n) job.done_cv.notify_all();
    }

    /// Polls ready() for up to spin_; whether it became true.
    template <class Ready>
    bool spin(Ready ready) const {
        if (spin_.count() <= 0) return ready();
        const auto until = std::chrono::steady_clock::now() + spin_;
        for (unsigned i = 1;; ++i) {
            if (ready()) return true;
#if ALTCLIP_X86
            _mm_pause();
#else
            std::this_thread::yield();
#endif
            if (i % 64 == 0 && std::chrono::steady_clock::now() >= until) return false;
        }
    }

    void work() {
        for (;;) {
            std::shared_ptr<Job> job;
            spin([&] { return queued_.load(std::memory_order_acquire) > 0; });
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
                if (stop_ && queue_.empty()) return;
                job = std::move(queue_.front());
                queue_.pop_front();
                queued_.store(queue_.size(), std::memory_order_release);
            }
            run(*job);
        }
    }

    void stop_workers() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        for (auto& w : workers_) w.join();
        workers_.clear();
    }

    Isa isa_;
    std::chrono::microseconds spin_;
    int size_ = 1;
    std::vector<std::thread> workers_;
    std::deque<std::shared_ptr<Job>> queue_;
    std::atomic<std::size_t> queued_{0};  // queue_.size(), for spinning workers
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
};

/// The kernels' level for calls with this pool; without one, the best this CPU allows
/// (under ALTCLIP_MAX_ISA).
inline Isa isa_of(const ThreadPool* pool) { return pool != nullptr ? pool->isa() : cpu_info().effective(); }

/// fn(i) for i in [0, n), on the pool if there is one, else in order on this thread.
template <class Fn>
inline void parallel_for(ThreadPool* pool, std::int64_t n, Fn&& fn) {
    if (pool != nullptr) {
        pool->parallel_for(n, fn);
    } else {
        for (std::int64_t i = 0; i < n; ++i) fn(i);
    }
}

/// The slots of a parallel_for_slots of n tasks with this pool (1 without one).
inline int slot_count(const ThreadPool* pool, std::int64_t n) { return pool != nullptr ? pool->slot_count(n) : 1; }

/// fn(i, slot) for i in [0, n), on the pool if there is one (ThreadPool::parallel_for_slots),
/// else in order on this thread as slot 0.
template <class Fn>
inline void parallel_for_slots(ThreadPool* pool, std::int64_t n, Fn&& fn) {
    if (pool != nullptr) {
        pool->parallel_for_slots(n, fn);
    } else {
        for (std::int64_t i = 0; i < n; ++i) fn(i, 0);
    }
}

/// fn(begin, end) over [0, total) in chunks of at least `grain`, on the pool if there is one.
template <class Fn>
inline void parallel_chunks(ThreadPool* pool, std::int64_t total, std::int64_t grain, Fn&& fn) {
    if (total <= 0) return;
    const std::int64_t threads = pool != nullptr ? pool->size() : 1;
    std::int64_t chunks = std::min<std::int64_t>(threads * 4, (total + grain - 1) / grain);
    if (chunks <= 1 || threads == 1) {
        fn(std::int64_t{0}, total);
        return;
    }
    const std::int64_t step = (total + chunks - 1) / chunks;
    chunks = (total + step - 1) / step;
    pool->parallel_for(chunks, [&](std::int64_t c) { fn(c * step, std::min(total, (c + 1) * step)); });
}

}  // namespace altclip::kernels
ALTCLIP_INTRINSIC_WARNINGS_ON
