// The kernels' thread pool (kernels/thread_pool.hpp): every task once, several callers at
// once, exceptions passed back, through both ways a thread waits (spinning, then sleeping).
// scripts/sanitize.sh runs these under ThreadSanitizer with tests/test_threads.cpp.
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <altclip/kernels/thread_pool.hpp>

using altclip::kernels::ThreadPool;

TEST_CASE("the thread pool serves several callers at once and passes exceptions back", "[kernels][threads]") {
    ThreadPool pool(3);
    std::vector<std::thread> callers;
    std::atomic<int> wrong{0};
    for (int c = 0; c < 6; ++c) {
        callers.emplace_back([&, c] {
            for (int rep = 0; rep < 50; ++rep) {
                std::vector<int> hit(100 + c, 0);
                pool.parallel_for(static_cast<std::int64_t>(hit.size()), [&](std::int64_t i) { hit[i] += 1; });
                for (int h : hit) wrong += h != 1;
            }
        });
    }
    for (auto& t : callers) t.join();
    CHECK(wrong == 0);
    CHECK_THROWS_WITH(pool.parallel_for(10, [](std::int64_t i) { if (i == 3) throw std::runtime_error("task 3"); }),
                      "task 3");
    int sum = 0;
    pool.parallel_for(1, [&](std::int64_t) { sum = 1; });  // still usable after an exception
    CHECK(sum == 1);
}

TEST_CASE("the thread pool's waits: spinning and sleeping, results and exceptions alike", "[kernels][threads]") {
    // Waiting threads spin for ThreadPool::kSpin, then sleep: calls back to back (the spin
    // finds the work), calls after a pause longer than the spin (the workers asleep), and a
    // helper's task outlasting the caller's spin (the caller asleep) each run every task once
    // and pass a helper's exception back.
    ThreadPool pool(2);
    const auto pause = ThreadPool::kSpin * 3;
    for (int rep = 0; rep < 60; ++rep) {
        const bool asleep = rep % 3 == 1, slow = rep % 3 == 2;
        if (asleep) std::this_thread::sleep_for(pause);
        std::vector<std::atomic<int>> hit(4);
        pool.parallel_for(4, [&](std::int64_t i) {
            if (slow && i == 3) std::this_thread::sleep_for(pause);
            hit[static_cast<std::size_t>(i)] += 1;
        });
        int wrong = 0;
        for (auto& h : hit) wrong += h.load() != 1;
        INFO("rep " << rep << (asleep ? " after a pause" : slow ? " with a slow task" : " back to back"));
        CHECK(wrong == 0);
        const std::int64_t thrower = rep % 4;
        CHECK_THROWS_WITH(pool.parallel_for(4,
                                            [&](std::int64_t i) {
                                                if (slow) std::this_thread::sleep_for(pause / 3);
                                                if (i == thrower) throw std::runtime_error("task " + std::to_string(i));
                                            }),
                          "task " + std::to_string(thrower));
    }
}
