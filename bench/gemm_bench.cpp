// altclip_gemm_bench: the machine's measured arithmetic peaks and the speed of
// kernels::linear on AltCLIP's matrix shapes, as a fraction of those peaks (f32 and bf16
// weights in the panel layout model files store them in, q8 row-major).
//
//   altclip_gemm_bench [--threads N] [--seconds S] [--json]
//
// Peaks are measured, not taken from a data sheet: independent chains of 512-bit
// vfmadd231ps (float32; 256-bit on a CPU without AVX-512, the file being built with
// -march=native), vdpbf16ps (bfloat16 pairs) and vpdpbusd (int8 quads; 0 where the CPU lacks
// them) per thread, all threads at once, and the read bandwidth of a 1 GiB buffer. Where the build has oneDNN,
// also what oneDNN's own matmul reaches on a large bf16 and int8 product (2048 x 1024 x 4096,
// its best layout, its OpenMP threads = --threads): on a CPU with AMX that is the AMX peak the
// bf16 and q8 products run against (they go through oneDNN there), elsewhere oneDNN's AVX-512
// kernels. Shapes: ViT-L/14 at 224 (257 tokens, hidden 1024, MLP 4096) and XLM-R large with
// 16 tokens.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <immintrin.h>

#include <altclip/kernels/gemm.hpp>
#include <altclip/kernels/onednn.hpp>

// This file is intrinsics throughout (the peaks): GCC 12's false "'__Y' is used uninitialized" from its own
// headers is off here as in the kernels (kernels/cpu.hpp).
ALTCLIP_INTRINSIC_WARNINGS_OFF

namespace {

using Clock = std::chrono::steady_clock;
using altclip::kernels::WeightMatrix;
using altclip::kernels::WeightType;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Runs fn(thread) on `threads` threads at once; returns the slowest thread's seconds.
double on_threads(int threads, const std::function<void(int)>& fn) {
    std::vector<std::thread> ts;
    std::vector<double> secs(threads);
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            const auto t0 = Clock::now();
            fn(t);
            secs[t] = seconds_since(t0);
        });
    for (auto& t : ts) t.join();
    return *std::max_element(secs.begin(), secs.end());
}

// 12 independent accumulator chains of one instruction; returns operations per second (all threads).
template <class Init, class Step>
double peak(int threads, long iters, double ops_per_instr, Init init, Step step) {
    using Acc = decltype(init(0));
    std::atomic<float> sink{0};
    const double s = on_threads(threads, [&](int) {
        Acc a[12];
        for (int i = 0; i < 12; ++i) a[i] = init(i);
        for (long it = 0; it < iters; ++it) {
            for (int i = 0; i < 12; ++i) a[i] = step(a[i]);
            __asm__ volatile("" :: "v"(a[0]), "v"(a[1]), "v"(a[2]), "v"(a[3]), "v"(a[4]), "v"(a[5]), "v"(a[6]),
                             "v"(a[7]), "v"(a[8]), "v"(a[9]), "v"(a[10]), "v"(a[11]));
        }
        float f;
        std::memcpy(&f, &a[5], 4);
        sink = sink + f;
    });
    return threads * iters * 12.0 * ops_per_instr / s;
}

double read_bandwidth(int threads) {
    const std::size_t n = (std::size_t(1) << 28) / threads;  // 1 GiB of floats in all
    std::vector<std::vector<float>> bufs(threads, std::vector<float>(n, 1.0f));
    std::atomic<float> sink{0};
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
        const double s = on_threads(threads, [&](int t) {
            const float* p = bufs[t].data();
#if defined(__AVX512F__)
            __m512 a = _mm512_setzero_ps(), b = a;
            for (std::size_t i = 0; i + 32 <= n; i += 32) {
                a = _mm512_add_ps(a, _mm512_loadu_ps(p + i));
                b = _mm512_add_ps(b, _mm512_loadu_ps(p + i + 16));
            }
            sink = sink + _mm512_reduce_add_ps(_mm512_add_ps(a, b));
#else  // AVX2 (this file is built with -march=native)
            __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
            for (std::size_t i = 0; i + 32 <= n; i += 32) {
                a = _mm256_add_ps(a, _mm256_loadu_ps(p + i));
                b = _mm256_add_ps(b, _mm256_loadu_ps(p + i + 8));
                c = _mm256_add_ps(c, _mm256_loadu_ps(p + i + 16));
                d = _mm256_add_ps(d, _mm256_loadu_ps(p + i + 24));
            }
            alignas(32) float lanes[8];
            _mm256_store_ps(lanes, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
            float total = 0;
            for (float v : lanes) total += v;
            sink = sink + total;
#endif
        });
        best = std::max(best, threads * n * 4.0 / s);
    }
    return best;
}

struct Shape {
    const char* name;
    std::int64_t n, k, out;
};

// A [rows, cols] matrix of 32-bit (f32) or 16-bit (bf16) values in the panel layout that
// tools/convert.py writes (docs/format.md), 64-byte aligned as in a model file.
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

#if ALTCLIP_WITH_ONEDNN
/// oneDNN's matmul on a 2048 x 1024 x 4096 product (bf16 x bf16 -> f32, or s8 x s8 -> s32),
/// weights reordered once into the layout it chooses, on `threads` OpenMP threads: the best
/// rate of repeated runs over `min_seconds`, in operations per second, and its implementation
/// (0 and "none on this CPU" where oneDNN has none for it).
std::pair<double, std::string> onednn_peak(bool int8, int threads, double min_seconds) {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const dnnl::memory::dim M = 2048, K = 1024, N = 4096;
    altclip::kernels::onednn::OmpThreads omp(threads);
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    dnnl::stream stream(eng);
    const dnnl::memory::desc src({M, K}, int8 ? dt::s8 : dt::bf16, tag::ab), wei({K, N}, int8 ? dt::s8 : dt::bf16, tag::any),
        dst({M, N}, int8 ? dt::s32 : dt::f32, tag::ab);
    dnnl::matmul::primitive_desc pd;
    try {
        pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, dst), eng);
    } catch (const dnnl::error&) {  // no implementation for this CPU (bf16 before AVX-512, say)
        return {0.0, "none on this CPU"};
    }
    dnnl::memory a(pd.src_desc(), eng), b(pd.weights_desc(), eng), c(pd.dst_desc(), eng);
    std::memset(a.get_data_handle(), 1, pd.src_desc().get_size());  // small values (bf16 0x0101: ~2e-38)
    std::memset(b.get_data_handle(), 1, pd.weights_desc().get_size());
    const dnnl::matmul prim(pd);
    const std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}};
    prim.execute(stream, args);  // JIT and first touches
    stream.wait();
    double best = 1e30;
    const auto t0 = Clock::now();
    do {
        const auto t1 = Clock::now();
        prim.execute(stream, args);
        stream.wait();
        best = std::min(best, seconds_since(t1));
    } while (seconds_since(t0) < min_seconds);
    return {2.0 * M * K * N / best, pd.impl_info_str()};
}
#endif

}  // namespace

int main(int argc, char** argv) {
    int threads = static_cast<int>(std::thread::hardware_concurrency());
    double min_seconds = 1.0;
    bool json = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
        else if (a == "--seconds" && i + 1 < argc) min_seconds = std::atof(argv[++i]);
        else if (a == "--json") json = true;
        else {
            std::fprintf(stderr, "usage: altclip_gemm_bench [--threads N] [--seconds S] [--json]\n");
            return 2;
        }
    }
    threads = std::max(1, threads);
    const long iters = 200'000'000 / 12;
#if defined(__AVX512F__)
    const double f32_peak = peak(threads, iters, 32, [](int i) { return _mm512_set1_ps(1.0f + i); },
                                 [](__m512 a) { return _mm512_fmadd_ps(a, _mm512_set1_ps(0.999999f), _mm512_set1_ps(1e-7f)); });
#else  // a CPU whose widest FMA is AVX2's 8 lanes
    const double f32_peak = peak(threads, iters, 16, [](int i) { return _mm256_set1_ps(1.0f + i); },
                                 [](__m256 a) { return _mm256_fmadd_ps(a, _mm256_set1_ps(0.999999f), _mm256_set1_ps(1e-7f)); });
#endif
    double bf16_peak = 0, i8_peak = 0;
#if defined(__AVX512BF16__)
    bf16_peak = peak(threads, iters, 64, [](int i) { return _mm512_set1_ps(1.0f + i); }, [](__m512 a) {
        const __m512i one = _mm512_set1_epi16(0x3f80), tiny = _mm512_set1_epi16(0x3301);
        return _mm512_dpbf16_ps(a, reinterpret_cast<const __m512bh&>(one), reinterpret_cast<const __m512bh&>(tiny));
    });
#endif
#if defined(__AVX512VNNI__)
    i8_peak = peak(threads, iters, 128, [](int i) { return _mm512_set1_epi32(i); },
                   [](__m512i a) { return _mm512_dpbusd_epi32(a, _mm512_set1_epi8(3), _mm512_set1_epi8(5)); });
#endif
    const double bw = read_bandwidth(threads);
    std::pair<double, std::string> dnn_bf16{0, "none (built without oneDNN)"}, dnn_i8 = dnn_bf16;
#if ALTCLIP_WITH_ONEDNN
    dnn_bf16 = onednn_peak(false, threads, min_seconds);
    dnn_i8 = onednn_peak(true, threads, min_seconds);
#endif
    if (!json) {
        std::printf("threads %d\n", threads);
        std::printf("peak float32 FMA      %7.1f GFLOP/s\n", f32_peak / 1e9);
        std::printf("peak bfloat16 dot     %7.1f GFLOP/s\n", bf16_peak / 1e9);
        std::printf("peak int8 dot (VNNI)  %7.1f GOP/s\n", i8_peak / 1e9);
        std::printf("read bandwidth        %7.1f GB/s\n", bw / 1e9);
        std::printf("oneDNN matmul bf16    %7.1f GFLOP/s (%s)\n", dnn_bf16.first / 1e9, dnn_bf16.second.c_str());
        std::printf("oneDNN matmul int8    %7.1f GOP/s (%s)\n", dnn_i8.first / 1e9, dnn_i8.second.c_str());
        std::printf("%-22s %-9s %9s %9s %7s\n", "shape", "type", "ms", "GFLOP/s", "%peak");
    } else {
        std::printf("{\"threads\": %d, \"peak_f32_flops\": %.4g, \"peak_bf16_flops\": %.4g, \"peak_i8_ops\": %.4g, "
                    "\"read_bandwidth\": %.4g, \"peak_onednn_bf16_flops\": %.4g, \"peak_onednn_bf16_impl\": \"%s\", "
                    "\"peak_onednn_i8_ops\": %.4g, \"peak_onednn_i8_impl\": \"%s\", \"shapes\": [",
                    threads, f32_peak, bf16_peak, i8_peak, bw, dnn_bf16.first, dnn_bf16.second.c_str(), dnn_i8.first,
                    dnn_i8.second.c_str());
    }

    altclip::kernels::ThreadPool pool(threads);
    const Shape shapes[] = {
        {"image qkv/out 1024", 257, 1024, 1024}, {"image fc1 1024>4096", 257, 1024, 4096},
        {"image fc2 4096>1024", 257, 4096, 1024}, {"text16 1024>1024", 16, 1024, 1024},
        {"text16 1024>4096", 16, 1024, 4096},     {"text16 4096>1024", 16, 4096, 1024},
    };
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    bool first_row = true;
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
        // f32 and bf16 as model files hold them (panels), q8 row-major.
        std::uint32_t *pf = nullptr, *pb = nullptr;
        const auto pf_storage = to_panels(wf, sh.out, sh.k, pf), pb_storage = to_panels(wb, sh.out, sh.k, pb);
        struct Variant {
            const char* name;
            WeightMatrix w;
            double peak;
        } variants[] = {
            {"f32", {WeightType::f32, pf, sh.out, sh.k, nullptr, true}, f32_peak},
            {"bf16", {WeightType::bf16_dot, pb, sh.out, sh.k, nullptr, true}, bf16_peak},
            {"q8", {WeightType::q8_dot, wq.data(), sh.out, sh.k, scale.data()}, i8_peak},
            {"q8 w/f32", {WeightType::q8, wq.data(), sh.out, sh.k, scale.data()}, f32_peak},
        };
        for (const Variant& v : variants) {
            altclip::kernels::Workspace ws;  // kept over the runs, as a forward pass keeps it over its products
            altclip::kernels::linear(x.data(), sh.n, sh.k, v.w, b.data(), sh.out, y.data(), &pool, ws);
            int runs = 0;
            const auto t0 = Clock::now();
            do {
                altclip::kernels::linear(x.data(), sh.n, sh.k, v.w, b.data(), sh.out, y.data(), &pool, ws);
                ++runs;
            } while (seconds_since(t0) < min_seconds);
            const double s = seconds_since(t0) / runs;
            const double flops = 2.0 * sh.n * sh.k * sh.out / s;
            if (!json) {
                std::printf("%-22s %-9s %9.3f %9.1f %6.1f%%\n", sh.name, v.name, s * 1e3, flops / 1e9,
                            v.peak > 0 ? 100.0 * flops / v.peak : 0.0);
            } else {
                std::printf("%s{\"shape\": \"%s\", \"n\": %lld, \"k\": %lld, \"out\": %lld, \"type\": \"%s\", "
                            "\"seconds\": %.6g, \"flops\": %.4g}",
                            first_row ? "" : ", ", sh.name, static_cast<long long>(sh.n), static_cast<long long>(sh.k),
                            static_cast<long long>(sh.out), v.name, s, flops);
                first_row = false;
            }
        }
    }
    if (json) std::printf("]}\n");
    return 0;
}
