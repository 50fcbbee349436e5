// oneDNN's products (kernels/onednn.hpp) against altclip's own kernels on the same rounded
// inputs, on odd shapes; and the one place that decides when a model uses it. Built with
// oneDNN only (CMake defines ALTCLIP_WITH_ONEDNN when it finds libdnnl-dev).
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <altclip/altclip.hpp>
#include <altclip/kernels/gemm.hpp>
#include <altclip/kernels/onednn.hpp>
#include <altclip/kernels/thread_pool.hpp>

#include "parity.hpp"
#include "random_data.hpp"

using namespace altclip::kernels;

#if ALTCLIP_WITH_ONEDNN

namespace {

using altclip_test::to_bf16;

float from_bf16(std::uint16_t h) {
    const std::uint32_t b = std::uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}

/// Worst |a - b| / bound over [n, out], bound[i, j] the size of the sum (sum_t |x w| + |bias|);
/// `where` says at which element.
double worst(const std::vector<float>& a, const std::vector<float>& b, const std::vector<double>& bound,
             std::int64_t out, std::string& where) {
    double w = 0;
    for (std::size_t e = 0; e < a.size(); ++e) {
        const double d = std::fabs(double(a[e]) - double(b[e])) / std::max(bound[e], 1e-30);
        if (d > w || std::isnan(d)) {
            w = d;
            std::ostringstream s;
            s << "row " << e / out << " column " << e % out << ": oneDNN " << a[e] << ", altclip " << b[e];
            where = s.str();
        }
    }
    return w;
}

// The panel layout of docs/format.md for 16-bit values in panels of P rows (as
// tests/test_kernels.cpp writes it), 64-byte aligned like a tensor in a model file, with the
// slack after it a file has.
struct Panels {
    std::vector<std::uint32_t> storage;
    std::uint32_t* data = nullptr;
    std::int64_t bytes = 0;
};
Panels to_panels(const std::vector<std::uint16_t>& w, std::int64_t rows, std::int64_t cols, std::int64_t P) {
    const std::int64_t units = (cols + 1) / 2, blocks = (rows + P - 1) / P;
    Panels p;
    p.storage.assign(static_cast<std::size_t>(blocks * units * P + 16), 0u);
    p.data = p.storage.data() + ((64 - reinterpret_cast<std::uintptr_t>(p.storage.data()) % 64) % 64) / 4;
    p.bytes = blocks * units * P * 4;
    for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < cols; ++c) {
            auto* unit = reinterpret_cast<std::uint16_t*>(p.data + ((r / P) * units + c / 2) * P + r % P);
            unit[c % 2] = w[r * cols + c];
        }
    return p;
}

// Whether oneDNN's bf16 matmul chooses the layout of 64-row panels (BA16a64b2a) on this CPU:
// its AVX512_BF16 and AMX-BF16 matmuls do; then a matrix with k a multiple of 32 stored so
// must be used in place. Unknown (not checked) when oneDNN's ISA is capped from outside.
bool onednn_takes_panels_in_place() {
    const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
    return altclip::cpu_info().supported >= altclip::Isa::avx512_bf16 && (cap == nullptr || *cap == '\0');
}

const std::vector<std::array<std::int64_t, 3>> kShapes = {  // n, k, out: k and out not multiples of 16 ...
    {1, 37, 23}, {7, 37, 23}, {257, 37, 23}, {1, 1030, 65}, {7, 1030, 65}, {257, 1030, 65},
    {1, 600, 201}, {7, 600, 201}, {257, 600, 201}, {49, 1030, 65},
    // ... and k multiples of 32 (the weights in 64-row panels used in place), out not of 64
    {7, 1024, 130}, {257, 64, 200}, {1, 96, 64},
    // ... and out a multiple of 64 too (in place, the whole matrix one memory), with rows enough
    // to be split by rows (onednn::kRowSplitMinRows), an odd count and not
    {257, 64, 128}, {100, 1024, 192}, {64, 96, 64}};

}  // namespace

// Tolerances, relative to the size of each sum: bf16, both sides multiply the same
// bfloat16-rounded activations and weights and sum in float32 in different orders, so they
// differ by float32 summation error, below 1e-5 of the sum of |x w| for these k (the error
// bound k * 2^-24 is 6e-5 at k = 1030; random signs keep it far lower). int8: the int32 sums
// are exact on both sides and the float epilogue is the same, so a few float32 roundings
// (1e-6 of the largest sum the scales allow).
TEST_CASE("onednn: bf16 and int8 products equal altclip's kernels on odd shapes", "[kernels][onednn]") {
    const auto pool_ptr = std::make_shared<ThreadPool>(2);
    ThreadPool& pool = *pool_ptr;
    onednn::Context ctx(pool_ptr);
    for (auto [n, k, out] : kShapes) {
        INFO("n " << n << " k " << k << " out " << out << ", altclip kernels at " << altclip::isa_name(pool.isa()));
        const auto x = altclip_test::randn(n * k, 41), wf = altclip_test::randn(out * k, 42), b = altclip_test::randn(out, 43);

        // bf16: row-major and in panels, with and without bias.
        std::vector<std::uint16_t> wb(wf.size());
        for (std::size_t i = 0; i < wf.size(); ++i) wb[i] = to_bf16(wf[i]);
        const auto panels32 = to_panels(wb, out, k, 32), panels64 = to_panels(wb, out, k, 64);
        // The scalar twin (double sums of the bfloat16-rounded x and W): what both sides compute.
        std::vector<double> bound(n * out), bound_nb(n * out);
        std::vector<float> ref(n * out), ref_nb(n * out);
        for (std::int64_t i = 0; i < n; ++i)
            for (std::int64_t j = 0; j < out; ++j) {
                double s = 0, d = 0;
                for (std::int64_t t = 0; t < k; ++t) {
                    const double p = double(from_bf16(to_bf16(x[i * k + t]))) * from_bf16(wb[j * k + t]);
                    s += std::fabs(p);
                    d += p;
                }
                bound_nb[i * out + j] = s;
                bound[i * out + j] = s + std::fabs(b[j]);
                ref_nb[i * out + j] = float(d);
                ref[i * out + j] = float(d + b[j]);
            }
        if (!ctx.has_matmul(onednn::PackedWeight::Kind::bf16)) {  // oneDNN 2.6 before AVX-512
            WARN("oneDNN has no bf16 matmul on this CPU (" << altclip::cpu_info().describe()
                                                           << "): its bf16 path not tested here");
            WeightMatrix w{WeightType::bf16_dot, wb.data(), out, k};
            CHECK_THROWS_AS(ctx.pack(w, "test"), altclip::InvalidArgument);
        }
        for (std::int64_t panel_rows : {0, 32, 64}) {
            if (!ctx.has_matmul(onednn::PackedWeight::Kind::bf16)) break;
            for (bool with_bias : {true, false}) {
                INFO("bf16, " << (panel_rows ? "panels of " + std::to_string(panel_rows) + " rows" : "row-major")
                              << (with_bias ? ", bias" : ", no bias"));
                const Panels& panels = panel_rows == 32 ? panels32 : panels64;
                WeightMatrix w{WeightType::bf16_dot, panel_rows ? static_cast<const void*>(panels.data) : wb.data(), out, k};
                w.panels = panel_rows != 0;
                w.panel_rows = panel_rows;
                std::vector<float> own(n * out), dnn(n * out), dnn1(n * out);
                const float* bias = with_bias ? b.data() : nullptr;
                linear(x.data(), n, k, w, bias, out, own.data(), &pool);
                const auto before = ctx.parts_in_place_and_copied();
                w.onednn = ctx.pack(w, "test");
                const auto after = ctx.parts_in_place_and_copied();
                const std::size_t in_place = after.first - before.first, parts = w.onednn->parts.size();
                INFO(in_place << " of " << parts << " weight parts used in place");
                CHECK(after.first + after.second - before.first - before.second == parts);
                if (panel_rows != 64 || k % 32 != 0) {
                    CHECK(in_place == 0);  // only 64-row panels of whole pairs of 16 are oneDNN's layout
                } else if (onednn_takes_panels_in_place()) {
                    CHECK(in_place == parts);
                    // Whole 64-column blocks: the whole matrix is one memory, so many rows are split
                    // by rows (each thread multiplying its rows by every column, straight into y).
                    CHECK(w.onednn->has_whole == (out % 64 == 0));
                    for (const auto& part : w.onednn->parts)  // the file's bytes, not a copy
                        CHECK(static_cast<const char*>(part.memory.get_data_handle()) ==
                              reinterpret_cast<const char*>(panels.data) + part.col0 * ((k + 1) / 2) * 4);
                }
                linear(x.data(), n, k, w, bias, out, dnn.data(), &pool);
                linear(x.data(), n, k, w, bias, out, dnn1.data(), &pool);
                CHECK(dnn == dnn1);  // a second call (primitive from the cache) gives the same numbers
                std::string where;
                const double e = worst(dnn, with_bias ? ref : ref_nb, with_bias ? bound : bound_nb, out, where);
                INFO("against the scalar twin: worst difference " << e << " of the sum of |x w|, at " << where);
                CHECK(e <= 1e-5);
                // altclip's kernels round x to bfloat16 too from avx512_bf16 on (below, they widen W).
                if (pool.isa() >= altclip::Isa::avx512_bf16) {
                    const double e2 = worst(dnn, own, with_bias ? bound : bound_nb, out, where);
                    INFO("against altclip's kernels: worst difference " << e2 << " of the sum of |x w|, at " << where);
                    CHECK(e2 <= 1e-5);
                }
            }
        }

        // int8: per-row weight scale; the activations quantized per row by both sides.
        std::vector<std::int8_t> wq(wf.size());
        std::vector<float> ws(out);
        for (std::int64_t j = 0; j < out; ++j) {
            float amax = 0;
            for (std::int64_t t = 0; t < k; ++t) amax = std::max(amax, std::fabs(wf[j * k + t]));
            ws[j] = amax / 127;
            for (std::int64_t t = 0; t < k; ++t) wq[j * k + t] = static_cast<std::int8_t>(std::nearbyint(wf[j * k + t] / ws[j]));
        }
        std::vector<double> qbound(n * out);
        for (std::int64_t i = 0; i < n; ++i) {
            float amax = 0;
            for (std::int64_t t = 0; t < k; ++t) amax = std::max(amax, std::fabs(x[i * k + t]));
            for (std::int64_t j = 0; j < out; ++j) {
                double s = 0;
                for (std::int64_t t = 0; t < k; ++t) s += 127.0 * std::fabs(double(wq[j * k + t]));
                qbound[i * out + j] = s * (amax / 127) * ws[j] + std::fabs(b[j]);
            }
        }
        if (!ctx.has_matmul(onednn::PackedWeight::Kind::s8)) {  // before VNNI its int8 sums saturate
            WARN("oneDNN has no exact int8 matmul on this CPU (" << altclip::cpu_info().describe()
                                                                 << "): its int8 path not tested here");
            WeightMatrix w{WeightType::q8_dot, wq.data(), out, k, ws.data()};
            CHECK_THROWS_AS(ctx.pack(w, "test"), altclip::InvalidArgument);
            continue;
        }
        for (bool with_bias : {true, false}) {
            INFO("int8" << (with_bias ? ", bias" : ", no bias"));
            WeightMatrix w{WeightType::q8_dot, wq.data(), out, k, ws.data()};
            std::vector<float> own(n * out), dnn(n * out);
            const float* bias = with_bias ? b.data() : nullptr;
            linear(x.data(), n, k, w, bias, out, own.data(), &pool);
            w.onednn = ctx.pack(w, "test");
            CHECK(w.onednn->has_whole);  // reordered whole: split by rows from kRowSplitMinRows rows
            linear(x.data(), n, k, w, bias, out, dnn.data(), &pool);
            std::string where;
            const double e = worst(dnn, own, qbound, out, where);
            INFO("worst difference " << e << " of the largest possible sum, at " << where);
            if (pool.isa() >= altclip::Isa::avx512_vnni) {
                CHECK(e <= 1e-6);
            } else {  // altclip widens int8 weights below VNNI (float32 math on unrounded x): quantization error
                CHECK(e <= 2e-2);
            }
        }
    }
    INFO(ctx.describe());
    CHECK(ctx.describe().find("oneDNN") == 0);
}

// The claim the in-place path rests on (format/layout.hpp): a bf16 [out, k] matrix in 64-row
// panels, k a multiple of 32, is byte for byte oneDNN's BA16a64b2a layout of the [k, out]
// weights. oneDNN's own reorder of the row-major matrix into that tag (on any CPU) must give
// the same bytes, padding included.
TEST_CASE("onednn: 64-row bf16 panels are oneDNN's BA16a64b2a layout", "[kernels][onednn]") {
    dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    for (auto [out, k] : std::vector<std::array<std::int64_t, 2>>{{64, 32}, {130, 64}, {200, 1024}, {1, 96}}) {
        INFO("out " << out << " k " << k);
        const auto wf = altclip_test::randn(out * k, 61);
        std::vector<std::uint16_t> wb(wf.size());
        for (std::size_t i = 0; i < wf.size(); ++i) wb[i] = to_bf16(wf[i]);
        const Panels panels = to_panels(wb, out, k, 64);
        using dt = dnnl::memory::data_type;
        using tag = dnnl::memory::format_tag;
        dnnl::memory plain({{k, out}, dt::bf16, tag::ba}, engine, wb.data());
        const dnnl::memory::desc blocked_desc({k, out}, dt::bf16, tag::BA16a64b2a);
        REQUIRE(static_cast<std::int64_t>(blocked_desc.get_size()) == panels.bytes);
        dnnl::memory blocked(blocked_desc, engine);
        std::memset(blocked.get_data_handle(), 0xAB, blocked_desc.get_size());  // padding must be written as zero
        dnnl::stream stream(engine);
        dnnl::reorder(plain, blocked).execute(stream, plain, blocked);
        stream.wait();
        const auto* a = static_cast<const unsigned char*>(blocked.get_data_handle());
        const auto* b = reinterpret_cast<const unsigned char*>(panels.data);
        std::int64_t first = -1;
        for (std::int64_t i = 0; i < panels.bytes && first < 0; ++i)
            if (a[i] != b[i]) first = i;
        INFO("first differing byte: " << first << " of " << panels.bytes);
        CHECK(first == -1);
    }
}

TEST_CASE("onednn: the rounding of activations equals the vector kernels'", "[kernels][onednn]") {
    const auto x = altclip_test::randn(4099, 51);
    std::vector<float> xs = x;
    xs[3] = 1e-40f;  // denormal: zero, as vcvtne2ps2bf16
    xs[5] = -0.0f;
    xs[7] = std::nanf("");
    for (std::size_t i = 0; i < xs.size(); ++i) {
        const std::uint16_t h = onednn::round::bf16(xs[i]);
        if (std::isnan(xs[i])) {
            CHECK(std::isnan(from_bf16(h)));
        } else if (i == 3) {
            CHECK(h == 0);
        } else {
            CHECK(h == to_bf16(xs[i]));
        }
    }
    if (altclip::cpu_info().supported >= altclip::Isa::avx512_bf16) {
        std::vector<std::uint16_t> v(xs.size());
        onednn::round::rows_bf16_avx512(xs.data(), 0, 1, static_cast<std::int64_t>(xs.size()), v.data());
        for (std::size_t i = 0; i < xs.size(); ++i)
            if (!std::isnan(xs[i])) CHECK(v[i] == onednn::round::bf16(xs[i]));
    }
    if (altclip::cpu_info().supported >= altclip::Isa::avx512) {
        std::vector<std::int8_t> q1(x.size()), q2(x.size());
        float s1 = 0, s2 = onednn::round::quantize_row(x.data(), static_cast<std::int64_t>(x.size()), q2.data());
        onednn::round::rows_q8_avx512(x.data(), 0, 1, static_cast<std::int64_t>(x.size()), q1.data(), &s1);
        CHECK(s1 == s2);
        CHECK(q1 == q2);
    }
}

TEST_CASE("onednn: a model says which engine multiplies, and exact never uses oneDNN", "[onednn][model]") {
    const bool forced = [] {
        const char* e = std::getenv("ALTCLIP_ONEDNN");
        return e != nullptr && (std::string(e) == "1" || std::string(e) == "on");
    }();
    altclip::ModelOptions on;
    on.onednn = altclip::OnednnUse::on;
    if (!onednn::Context(std::make_shared<ThreadPool>(1)).has_matmul(onednn::PackedWeight::Kind::bf16)) {
        // oneDNN 2.6 before AVX-512: forcing it on a bf16 file is an error that says so.
        WARN("oneDNN has no bf16 matmul on this CPU (" << altclip::cpu_info().describe() << ")");
        try {
            (void)altclip::AltCLIPModel::from_file(altclip_test::data_path("models/tiny-bf16.altclip"), on);
            FAIL("a bf16 model forced through oneDNN loaded on a CPU where oneDNN has no bf16 matmul");
        } catch (const altclip::InvalidArgument& e) {
            INFO(e.what());
            CHECK(std::string(e.what()).find("no bfloat16 matmul on this CPU") != std::string::npos);
        }
        return;
    }
    const auto m = altclip::AltCLIPModel::from_file(altclip_test::data_path("models/tiny-bf16.altclip"), on);
    INFO(m.matmul_engine());
    CHECK(m.matmul_engine().find("oneDNN") == 0);
    // Every bf16 matrix the model multiplies goes to oneDNN, none to altclip's AMX tile copies;
    // the word embedding table (rows looked up, never multiplied) to neither. Without oneDNN at
    // Isa::amx, every one whose k is a multiple of 32 (all but the tiny patch embedding's) is
    // copied for the tiles: both towers'.
    const auto file = altclip::ModelFile::open(altclip_test::data_path("models/tiny-bf16.altclip"));
    int multiplied = 0, tileable = 0, text = 0;
    for (const auto& [name, t] : file->container().tensors()) {
        if (t.dtype != altclip::DType::bf16 || t.shape.size() < 2 || name.find("word_embeddings") != std::string::npos) continue;
        ++multiplied;
        std::int64_t k = 1;
        for (std::size_t i = 1; i < t.shape.size(); ++i) k *= t.shape[i];
        if (k % 32 == 0) ++tileable;
        if (k % 32 == 0 && name.rfind("text_model.", 0) == 0) ++text;
    }
    REQUIRE(multiplied > 0);
    REQUIRE(text > 0);
    // "...; N weight matrices in P parts ..." and "...; M bf16 weight matrices on AMX bf16 tiles"
    auto count_before = [&](const std::string& engine, const std::string& tail) {
        const auto at = engine.find(tail);
        if (at == std::string::npos) return 0;
        const auto start = engine.find_last_of(' ', at - 1) + 1;
        return std::stoi(engine.substr(start, at - start));
    };
    CHECK(count_before(m.matmul_engine(), " weight matrices in ") == multiplied);
    CHECK(count_before(m.matmul_engine(), " bf16 weight matrices on AMX") == 0);
    altclip::ModelOptions off;
    off.onednn = altclip::OnednnUse::off;
    const auto m_off = altclip::AltCLIPModel::from_file(altclip_test::data_path("models/tiny-bf16.altclip"), off);
    INFO(m_off.matmul_engine());
    CHECK(m_off.matmul_engine().find("oneDNN") == std::string::npos);
    CHECK(count_before(m_off.matmul_engine(), " bf16 weight matrices on AMX") == (m_off.isa() >= altclip::Isa::amx ? tileable : 0));
    altclip::ModelOptions exact = on;
    exact.exact = true;
    CHECK(altclip::AltCLIPModel::from_file(altclip_test::data_path("models/tiny-bf16.altclip"), exact)
              .matmul_engine()
              .find("oneDNN") == std::string::npos);
    // Automatic: as ALTCLIP_ONEDNN says, else never.
    const auto m_auto = altclip::AltCLIPModel::from_file(altclip_test::data_path("models/tiny-bf16.altclip"));
    CHECK((m_auto.matmul_engine().find("oneDNN") == 0) == forced);
    // oneDNN and altclip's kernels give the same embeddings within float32 summation order where
    // both round the activations to bfloat16 (AMX, and AVX512_BF16 where its dot products pay:
    // CpuInfo::bf16_dot_pays); elsewhere altclip widens the weights instead, and the two differ
    // by the activations' rounding.
    const double margin = altclip::cpu_info().bf16_dot_pays(m.isa()) ? 1e-4 : 5e-3;
    const altclip::AltCLIPProcessor processor(m.file());
    const auto tokens = processor(std::vector<std::string>{"a photo of a cat", "一张狗的照片"});
    const auto pixels = processor.load_images({altclip_test::data_path("images/chelsea.png")});
    const auto a = m.forward(tokens, pixels), b = m_off.forward(tokens, pixels);
    for (std::size_t i = 0; i < a.image_embeds.data.size(); ++i) CHECK(a.image_embeds.data[i] == Approx(b.image_embeds.data[i]).margin(margin));
    for (std::size_t i = 0; i < a.text_embeds.data.size(); ++i) CHECK(a.text_embeds.data[i] == Approx(b.text_embeds.data[i]).margin(margin));
}

#else

TEST_CASE("onednn: asked for in a build without it is an InvalidArgument", "[onednn]") {
    CHECK_FALSE(onednn::kAvailable);
    CHECK_THROWS_AS(onednn::use_onednn(altclip::OnednnUse::on), altclip::InvalidArgument);
    CHECK_FALSE(onednn::use_onednn(altclip::OnednnUse::off));
}

#endif

TEST_CASE("onednn: the choice and ALTCLIP_ONEDNN's values", "[onednn]") {
    CHECK_FALSE(onednn::use_onednn(altclip::OnednnUse::off));
    if (onednn::kAvailable) CHECK(onednn::use_onednn(altclip::OnednnUse::on));
    // Automatic: only when ALTCLIP_ONEDNN asks for it (kernels/onednn.hpp says why).
    if (std::getenv("ALTCLIP_ONEDNN") == nullptr) CHECK_FALSE(onednn::use_onednn(altclip::OnednnUse::automatic));
}
