// altclip_attention_bench: the attention of one layer (kernels::attention), float32 against
// bf16 (AttentionMath::bf16: AMX tiles at Isa::amx, the float32 kernels below it), alternating
// in rounds, on AltCLIP's shapes: a ViT-L/14 image (257 rows, 16 heads of 64) and a 16-token
// text (16 heads of 64). Prints the median time of one layer per side and the largest
// difference between the two sides' outputs.
//
//   altclip_attention_bench [--threads N] [--rounds R] [--seconds S]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <altclip/kernels/cpu.hpp>
#include <altclip/kernels/ops.hpp>

namespace {

using Clock = std::chrono::steady_clock;
using namespace altclip::kernels;

/// Median over `rounds` of the mean time of fn() repeated for `seconds`, in ms.
template <class Fn>
double time_ms(Fn&& fn, double seconds) {
    fn();
    int reps = 0;
    const auto t0 = Clock::now();
    double t = 0;
    do {
        fn();
        ++reps;
        t = std::chrono::duration<double>(Clock::now() - t0).count();
    } while (t < seconds);
    return t / reps * 1e3;
}

}  // namespace

int main(int argc, char** argv) {
    int threads = 2, rounds = 5;
    double seconds = 0.5;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 < argc && a == "--threads") threads = std::atoi(argv[++i]);
        else if (i + 1 < argc && a == "--rounds") rounds = std::atoi(argv[++i]);
        else if (i + 1 < argc && a == "--seconds") seconds = std::atof(argv[++i]);
        else {
            std::fprintf(stderr, "usage: altclip_attention_bench [--threads N] [--rounds R] [--seconds S]\n");
            return a == "--help" ? 0 : 2;
        }
    }
    if (threads < 1 || threads > 256 || rounds < 1 || !(seconds > 0)) {
        std::fprintf(stderr, "altclip_attention_bench: --threads 1..256, --rounds >= 1, --seconds > 0\n");
        return 2;
    }
    ThreadPool pool(threads);
    std::printf("CPU: %s\n", altclip::cpu_info().describe().c_str());
    std::printf("%d threads, %d alternating rounds, median ms of one layer's attention\n", threads, rounds);
    std::printf("| shape | f32 ms | bf16 ms | f32 / bf16 | bf16 path | largest difference / largest output |\n|---|---:|---:|---:|---|---:|\n");
    const std::int64_t heads = 16, hd = 64, width = heads * hd;
    for (const std::int64_t seq : {257, 16}) {
        std::mt19937 gen(static_cast<unsigned>(seq));
        std::normal_distribution<float> nd;
        std::vector<float> q(seq * width), k(q.size()), v(q.size()), o32(q.size()), o16(q.size());
        for (auto* a : {&q, &k, &v})
            for (float& x : *a) x = nd(gen);
        Workspace ws;
        auto run = [&](AttentionMath math, std::vector<float>& out) {
            attention(q.data(), k.data(), v.data(), 1, seq, heads, hd, nullptr, out.data(), &pool, ws, math);
        };
        std::vector<double> t32, t16;
        for (int r = 0; r < rounds; ++r) {
            if (r % 2 == 0) {
                t32.push_back(time_ms([&] { run(AttentionMath::f32, o32); }, seconds));
                t16.push_back(time_ms([&] { run(AttentionMath::bf16, o16); }, seconds));
            } else {
                t16.push_back(time_ms([&] { run(AttentionMath::bf16, o16); }, seconds));
                t32.push_back(time_ms([&] { run(AttentionMath::f32, o32); }, seconds));
            }
        }
        auto median = [](std::vector<double> x) {
            std::sort(x.begin(), x.end());
            return x[x.size() / 2];
        };
        double diff = 0, big = 0;
        for (std::size_t i = 0; i < o32.size(); ++i) {
            diff = std::max(diff, double(std::fabs(o32[i] - o16[i])));
            big = std::max(big, double(std::fabs(o32[i])));
        }
        const bool amx = pool.isa() >= altclip::Isa::amx;
        std::printf("| %s %lld x %lld heads of %lld | %.3f | %.3f | %.2f | %s | %.1e |\n", seq == 257 ? "image" : "text16",
                    static_cast<long long>(seq), static_cast<long long>(heads), static_cast<long long>(hd), median(t32),
                    median(t16), median(t32) / median(t16), amx ? "AMX tiles" : "float32 kernels (no AMX)", diff / big);
    }
    return 0;
}
