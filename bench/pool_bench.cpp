// altclip_pool_bench: what one parallel call of the kernels' thread pool costs beyond its
// tasks, with waiting threads that spin before they sleep (ThreadPool::kSpin, the default)
// and with ones that sleep at once, alternating in one run.
//
//   altclip_pool_bench [--threads N] [--rounds R]
//
// Each call runs `tasks` tasks that each busy-wait `task_us`, over N threads (default 2): the
// ideal time of a call is tasks x task_us / N, and what is printed is the median over the
// rounds of the time per call above that. Shapes: two tasks of 50 us (a short product), 16 of
// 200 us (an image's 1024-column product: 16 tasks of two panels), 16 of 20 us (a text's).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <altclip/kernels/thread_pool.hpp>

namespace {

using Clock = std::chrono::steady_clock;

void busy(double us) {
    const auto until = Clock::now() + std::chrono::duration<double, std::micro>(us);
    while (Clock::now() < until) {
    }
}

/// Microseconds per call above the ideal, over `calls` calls back to back.
double overhead_us(altclip::kernels::ThreadPool& pool, int tasks, double task_us, int calls) {
    const auto t0 = Clock::now();
    for (int c = 0; c < calls; ++c) pool.parallel_for(tasks, [&](std::int64_t) { busy(task_us); });
    const double per = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / calls;
    return per - tasks * task_us / pool.size();
}

int int_arg(const char* flag, const char* v) {
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (end == v || *end != '\0' || n < 1 || n > 64) {
        std::fprintf(stderr, "altclip_pool_bench: %s takes an integer in [1, 64], got '%s'\n", flag, v);
        std::exit(2);
    }
    return static_cast<int>(n);
}

}  // namespace

int main(int argc, char** argv) {
    int threads = 2, rounds = 5;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = int_arg("--threads", argv[++i]);
        } else if (std::strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = int_arg("--rounds", argv[++i]);
        } else {
            std::fprintf(stderr, "usage: altclip_pool_bench [--threads N] [--rounds R]\n");
            return 2;
        }
    }
    using altclip::kernels::ThreadPool;
    ThreadPool spinning(threads, altclip::cpu_info().effective(), ThreadPool::kSpin);
    ThreadPool sleeping(threads, altclip::cpu_info().effective(), std::chrono::microseconds(0));
    struct Shape {
        int tasks;
        double task_us;
    };
    const Shape shapes[] = {{2, 50}, {16, 200}, {16, 20}};
    std::printf("%d threads, %d rounds; microseconds per call beyond tasks x task / threads (median)\n", threads, rounds);
    const std::string spin_name = "spin " + std::to_string(ThreadPool::kSpin.count()) + " us";
    std::printf("%-16s %14s %14s\n", "tasks x us", spin_name.c_str(), "sleep at once");
    for (const Shape& s : shapes) {
        const int calls = std::max(50, static_cast<int>(200000 / (s.tasks * s.task_us)));
        std::vector<double> spin, sleep;
        for (int r = 0; r < rounds; ++r) {
            spin.push_back(overhead_us(spinning, s.tasks, s.task_us, calls));
            sleep.push_back(overhead_us(sleeping, s.tasks, s.task_us, calls));
        }
        std::sort(spin.begin(), spin.end());
        std::sort(sleep.begin(), sleep.end());
        const std::string name = std::to_string(s.tasks) + " x " + std::to_string(static_cast<int>(s.task_us));
        std::printf("%-16s %14.1f %14.1f\n", name.c_str(), spin[spin.size() / 2], sleep[sleep.size() / 2]);
    }
    return 0;
}
