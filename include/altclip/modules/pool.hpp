// Creating the thread pool a model's calls share, from ModelOptions::num_threads: a count
// out of range is an InvalidArgument and a system that cannot start the threads a
// ResourceError, never an uncaught std::system_error.
#pragma once

#include <chrono>
#include <memory>
#include <new>
#include <string>
#include <system_error>
#include <thread>

#include "../errors.hpp"
#include "../kernels/thread_pool.hpp"
#include "../limits.hpp"
#include "../options.hpp"

namespace altclip::detail {

/// A model's compute context: the pool for options.num_threads (0 = all cores, 1 = the
/// calling thread only) running the kernels of cpu_info().effective(options.max_isa), its
/// idle threads spinning options.spin_us before they sleep; `who`
/// names the class in messages ("AltCLIPModel").
inline std::shared_ptr<kernels::ThreadPool> make_thread_pool(const ModelOptions& options, const std::string& who) {
    const int num_threads = options.num_threads;
    const unsigned cores = std::thread::hardware_concurrency();
    const std::string advice = "use 0 (all " + (cores > 0 ? std::to_string(cores) + " " : std::string()) +
                               "cores) or a count from 1 to " + std::to_string(kMaxThreads);
    if (num_threads < 0 || num_threads > kMaxThreads) {
        throw InvalidArgument(who + ": ModelOptions::num_threads is " + std::to_string(num_threads) + "; " + advice +
                              " (kMaxThreads)");
    }
    if (options.spin_us < 0 || options.spin_us > kMaxSpinMicroseconds) {
        throw InvalidArgument(who + ": ModelOptions::spin_us is " + std::to_string(options.spin_us) +
                              "; use 0 (sleep at once) to " + std::to_string(kMaxSpinMicroseconds) +
                              " microseconds (kMaxSpinMicroseconds)");
    }
    try {
        return std::make_shared<kernels::ThreadPool>(num_threads, cpu_info().effective(options.max_isa),
                                                     std::chrono::microseconds(options.spin_us));
    } catch (const std::system_error& e) {
        throw ResourceError(who + ": cannot start " + std::to_string(num_threads) + " threads (" + e.what() +
                            "); use fewer threads (ModelOptions::num_threads), or 0 for one per core");
    } catch (const std::bad_alloc&) {
        throw ResourceError(who + ": out of memory starting " + std::to_string(num_threads) +
                            " threads; use fewer threads (ModelOptions::num_threads)");
    }
}

}  // namespace altclip::detail
