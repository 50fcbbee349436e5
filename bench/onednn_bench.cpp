// altclip_onednn_bench: oneDNN's matmul (kernels/onednn.hpp; f32 directly) against altclip's own
// kernels (kernels::linear) on AltCLIP's shapes, float32, bf16 and int8, in alternating rounds;
// prints the median time of each side and the implementation oneDNN chose. bf16 and int8 go
// through the library's path (single-threaded primitives per column part on altclip's pool);
// f32 through one oneDNN matmul on its own OpenMP threads.
//
//   altclip_onednn_bench [--threads N] [--rounds R] [--seconds S]
//
// bf16 and f32 weights are in the panel layout model files store them in, int8 row-major, as
// the loader hands them to the kernels. f32 through oneDNN has no path in the library: it is
// measured here to decide whether it should.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <altclip/kernels/gemm.hpp>
#include <altclip/kernels/onednn.hpp>

#if !ALTCLIP_WITH_ONEDNN
int main() {
    std::fprintf(stderr, "altclip_onednn_bench: built without oneDNN (apt-get install libdnnl-dev, re-run CMake)\n");
    return 1;
}
#else

namespace {

using Clock = std::chrono::steady_clock;
using namespace altclip::kernels;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// Mean seconds per call of fn, calling it for at least min_seconds (after one warm-up call).
double time_it(const std::function<void()>& fn, double min_seconds) {
    fn();
    int runs = 0;
    const auto t0 = Clock::now();
    do {
        fn();
        ++runs;
    } while (seconds_since(t0) < min_seconds);
    return seconds_since(t0) / runs;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

template <class T>
std::vector<std::uint32_t> to_panels(const std::vector<T>& w, std::int64_t rows, std::int64_t cols, std::uint32_t*& data) {
    constexpr int g = 4 / sizeof(T);
    constexpr std::int64_t P = altclip::kPanelRows;
    const std::int64_t units = (cols + g - 1) / g, blocks = (rows + P - 1) / P;
    std::vector<std::uint32_t> storage(static_cast<std::size_t>(blocks * units * P + 16), 0u);
    data = storage.data() + ((64 - reinterpret_cast<std::uintptr_t>(storage.data()) % 64) % 64) / 4;
    for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < cols; ++c)
            reinterpret_cast<T*>(data + altclip::panel_unit(r, c, cols, g, P))[c % g] = w[r * cols + c];
    return storage;
}

/// float32 x float32 through oneDNN, weights reordered once into the layout it chooses.
struct F32Matmul {
    dnnl::matmul prim;
    dnnl::memory w, src, dst, bias;
    std::string impl;
    F32Matmul(const onednn::Context& ctx, const float* x, const float* wt, const float* b, float* y, std::int64_t n,
              std::int64_t k, std::int64_t out) {
        using dt = dnnl::memory::data_type;
        using tag = dnnl::memory::format_tag;
        const auto& eng = ctx.engine();
        onednn::OmpThreads omp(ctx.pool()->size());
        const dnnl::memory::desc s({n, k}, dt::f32, tag::ab), wd({k, out}, dt::f32, tag::any),
            bd({1, out}, dt::f32, tag::ab), d({n, out}, dt::f32, tag::ab);
        const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(s, wd, bd, d), eng);
        impl = pd.impl_info_str();
        dnnl::memory plain({{k, out}, dt::f32, tag::ba}, eng, const_cast<float*>(wt));
        w = dnnl::memory(pd.weights_desc(), eng);
        dnnl::stream st(eng);
        dnnl::reorder(plain, w).execute(st, plain, w);
        st.wait();
        prim = dnnl::matmul(pd);
        src = dnnl::memory(s, eng, const_cast<float*>(x));
        dst = dnnl::memory(d, eng, y);
        bias = dnnl::memory(bd, eng, const_cast<float*>(b));
    }
    void run(const onednn::Context& ctx) {
        onednn::OmpThreads omp(ctx.pool()->size());
        dnnl::stream st(ctx.engine());
        prim.execute(st, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, bias}, {DNNL_ARG_DST, dst}});
        st.wait();
    }
};

}  // namespace

int main(int argc, char** argv) {
    int threads = static_cast<int>(std::thread::hardware_concurrency());
    int rounds = 3;
    double min_seconds = 0.3;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
        else if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
        else if (a == "--seconds" && i + 1 < argc) min_seconds = std::atof(argv[++i]);
        else {
            std::fprintf(stderr, "usage: altclip_onednn_bench [--threads N] [--rounds R] [--seconds S]\n");
            return 2;
        }
    }
    threads = std::max(1, threads);
    const auto pool_ptr = std::make_shared<ThreadPool>(threads);
    ThreadPool& pool = *pool_ptr;
    onednn::Context ctx(pool_ptr);
    std::printf("CPU: %s\naltclip kernels: %s, %d threads; %d alternating rounds, median ms\n",
                altclip::cpu_info().describe().c_str(), altclip::isa_name(pool.isa()), threads, rounds);
    std::printf("| shape n x k > out | type | altclip ms | oneDNN ms | altclip / oneDNN time | GFLOP/s altclip | oneDNN | oneDNN impl |\n");
    std::printf("|---|---|---:|---:|---:|---:|---:|---|\n");
    struct Shape {
        const char* name;
        std::int64_t n, k, out;
    };
    const Shape shapes[] = {
        {"image qkv/out", 257, 1024, 1024}, {"image fc1", 257, 1024, 4096}, {"image fc2", 257, 4096, 1024},
        {"text16 qkv/out", 16, 1024, 1024}, {"text16 fc1", 16, 1024, 4096}, {"text16 fc2", 16, 4096, 1024},
        {"8 images fc1", 2056, 1024, 4096},
    };
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (const Shape& sh : shapes) {
        std::vector<float> x(sh.n * sh.k), wf(sh.out * sh.k), b(sh.out), y(sh.n * sh.out), scale(sh.out, 0.01f);
        for (auto& v : x) v = nd(rng);
        for (auto& v : wf) v = nd(rng) * 0.03f;
        for (auto& v : b) v = nd(rng);
        std::vector<std::uint16_t> wb(wf.size());
        std::vector<std::int8_t> wq(wf.size());
        for (std::size_t i = 0; i < wf.size(); ++i) {
            std::uint32_t u;
            std::memcpy(&u, &wf[i], 4);
            wb[i] = static_cast<std::uint16_t>(u >> 16);
            wq[i] = static_cast<std::int8_t>(std::clamp(wf[i] * 100.0f, -127.0f, 127.0f));
        }
        std::uint32_t *pf = nullptr, *pb = nullptr;
        const auto pf_storage = to_panels(wf, sh.out, sh.k, pf), pb_storage = to_panels(wb, sh.out, sh.k, pb);
        const WeightMatrix w_f32{WeightType::f32, pf, sh.out, sh.k, nullptr, true};
        const WeightMatrix w_bf16{WeightType::bf16_dot, pb, sh.out, sh.k, nullptr, true};
        const WeightMatrix w_q8{WeightType::q8_dot, wq.data(), sh.out, sh.k, scale.data()};
        WeightMatrix d_bf16 = w_bf16, d_q8 = w_q8;
        d_bf16.onednn = ctx.pack(w_bf16, "bf16");
        d_q8.onednn = ctx.pack(w_q8, "q8");
        F32Matmul f32(ctx, x.data(), wf.data(), b.data(), y.data(), sh.n, sh.k, sh.out);
        altclip::kernels::Workspace ws;  // kept over the runs, as a forward pass keeps it over its products
        struct Pair {
            const char* type;
            std::function<void()> own, dnn;
        } pairs[] = {
            {"f32", [&] { linear(x.data(), sh.n, sh.k, w_f32, b.data(), sh.out, y.data(), &pool, ws); },
             [&] { f32.run(ctx); }},
            {"bf16", [&] { linear(x.data(), sh.n, sh.k, w_bf16, b.data(), sh.out, y.data(), &pool, ws); },
             [&] { linear(x.data(), sh.n, sh.k, d_bf16, b.data(), sh.out, y.data(), &pool, ws); }},
            {"int8", [&] { linear(x.data(), sh.n, sh.k, w_q8, b.data(), sh.out, y.data(), &pool, ws); },
             [&] { linear(x.data(), sh.n, sh.k, d_q8, b.data(), sh.out, y.data(), &pool, ws); }},
        };
        for (const Pair& p : pairs) {
            std::vector<double> own, dnn;
            for (int r = 0; r < rounds; ++r) {  // alternating, the first side swapped each round
                if (r % 2 == 0) {
                    own.push_back(time_it(p.own, min_seconds));
                    dnn.push_back(time_it(p.dnn, min_seconds));
                } else {
                    dnn.push_back(time_it(p.dnn, min_seconds));
                    own.push_back(time_it(p.own, min_seconds));
                }
            }
            const double a = median(own), d = median(dnn), flop = 2.0 * sh.n * sh.k * sh.out;
            std::string impl = std::string(p.type) == "f32" ? f32.impl : "";
            if (impl.empty()) {
                const std::string all = ctx.describe();
                const std::string want = std::string(p.type) == "bf16" ? "bf16 " : "int8 ";
                for (std::size_t at = all.find(want); at != std::string::npos; at = all.find(want, at + 1)) {
                    const std::size_t end = all.find_first_of(",;", at);
                    impl = all.substr(at + want.size(), end == std::string::npos ? std::string::npos : end - at - want.size());
                }
            }
            std::printf("| %s %lldx%lld>%lld | %s | %.3f | %.3f | %.2f | %.0f | %.0f | %s |\n", sh.name,
                        static_cast<long long>(sh.n), static_cast<long long>(sh.k), static_cast<long long>(sh.out),
                        p.type, a * 1e3, d * 1e3, a / d, flop / a / 1e9, flop / d / 1e9, impl.c_str());
            std::fflush(stdout);
        }
    }
    std::printf("%s\n", ctx.describe().c_str());
    return 0;
}

#endif
