// The kernels chosen at run time: level names, the cap, and that every level this CPU has
// gives the best level's results (the whole suite also runs under each cap: CMakeLists.txt).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <altclip/kernels/cpu.hpp>
#include <altclip/kernels/thread_pool.hpp>
#include <altclip/model.hpp>

#include "parity.hpp"

using altclip::Isa;
using altclip_test::data_path;

namespace {

std::vector<Isa> levels_here() {
    std::vector<Isa> v;
    for (int i = 0; i <= static_cast<int>(altclip::cpu_info().effective()); ++i) v.push_back(static_cast<Isa>(i));
    return v;
}

double max_rel_diff(const altclip::Tensor& a, const altclip::Tensor& b) {
    double m = 0, s = 0;
    for (std::size_t i = 0; i < a.data.size(); ++i) {
        m = std::max(m, std::fabs(double(a.data[i]) - double(b.data[i])));
        s = std::max(s, std::fabs(double(b.data[i])));
    }
    return m / s;
}

struct Inputs {
    std::vector<float> px;
    std::vector<std::int64_t> ids, mask;
    altclip::PixelView pixels;
    altclip::TokenView tokens;
};

Inputs inputs_of(const altclip::Container& ref) {
    Inputs in;
    const auto& p = ref.tensor("vision.pixel_values");
    in.px = p.to_f32();
    in.pixels = {in.px.data(), p.shape[0], p.shape[1], p.shape[2], p.shape[3]};
    const auto& ids = ref.tensor("text.input_ids");
    in.ids = ids.to_i64();
    if (ref.has_tensor("text.attention_mask")) in.mask = ref.tensor("text.attention_mask").to_i64();
    in.tokens = {in.ids.data(), in.mask.empty() ? nullptr : in.mask.data(), ids.shape[0], ids.shape[1]};
    return in;
}

}  // namespace

TEST_CASE("isa: level names, the cap and what this CPU has", "[isa]") {
    for (int i = 0; i <= static_cast<int>(Isa::best); ++i) {
        const Isa isa = static_cast<Isa>(i);
        CHECK(altclip::kernels::parse_isa(altclip::isa_name(isa), "x") == isa);
    }
    try {
        altclip::kernels::parse_isa("avx1024", "ALTCLIP_MAX_ISA");
        FAIL("no error");
    } catch (const altclip::InvalidArgument& e) {
        const std::string msg = e.what();
        CHECK(msg.find("ALTCLIP_MAX_ISA='avx1024'") != std::string::npos);
        CHECK(msg.find("avx512_bf16") != std::string::npos);
    }
    altclip::CpuInfo c;
    c.supported = Isa::avx512_bf16;
    CHECK(c.bf16_dot_pays(Isa::avx512_bf16));
    CHECK(!c.bf16_dot_pays(Isa::avx512_vnni));
    c.bf16_dot_half_rate = true;  // Intel's AVX512_BF16: widened below AMX, AMX tiles where present
    CHECK(!c.bf16_dot_pays(Isa::avx512_bf16));
    CHECK(c.bf16_dot_pays(Isa::amx));
    CHECK(c.describe().find("widened") != std::string::npos);
    c.bf16_dot_half_rate = false;
    c.supported = Isa::avx512_vnni;
    CHECK(c.effective() == Isa::avx512_vnni);
    CHECK(c.effective(Isa::avx2) == Isa::avx2);
    c.env_cap = Isa::avx512;
    CHECK(c.effective() == Isa::avx512);
    CHECK(c.effective(Isa::portable) == Isa::portable);
    const auto& cpu = altclip::cpu_info();
    INFO(cpu.describe());
    CHECK(!cpu.features.empty());
    WARN("kernel levels tested on this CPU: up to " << altclip::isa_name(cpu.effective()) << " (" << cpu.describe() << ")");
}

TEST_CASE("isa: a model at every level this CPU has gives the best level's features", "[isa][model]") {
    const altclip::Container ref(data_path("models/tiny.ref"));
    const Inputs in = inputs_of(ref);
    auto features = [&](const std::string& file, Isa cap, bool exact) {
        altclip::ModelOptions o;
        o.max_isa = cap;
        o.exact = exact;
        o.num_threads = 2;
        const auto model = altclip::AltCLIPModel::from_file(data_path(file), o);
        CHECK(model.isa() == altclip::cpu_info().effective(cap));
        return std::make_pair(model.get_image_features(in.pixels), model.get_text_features(in.tokens));
    };
    for (const std::string file : {"models/tiny.altclip", "models/tiny-bf16.altclip", "models/tiny-q8.altclip"}) {
        const auto best = features(file, Isa::best, true);
        for (const Isa isa : levels_here()) {
            INFO(file << " at " << altclip::isa_name(isa));
            const auto got = features(file, isa, true);
            // float32 math on every level (exact mode): only the order of sums differs.
            CHECK(max_rel_diff(got.first, best.first) < 1e-5);
            CHECK(max_rel_diff(got.second, best.second) < 1e-5);
        }
    }
    // bf16 files are widened without AVX512_BF16, and with it where its dot products run at half
    // the float32 rate (Intel without AMX tiles: CpuInfo::bf16_dot_pays): the same bits as exact
    // mode at that level (on altclip's kernels; oneDNN, when forced, rounds the activations to
    // bfloat16 at any level).
    for (const Isa isa : levels_here()) {
        if (altclip::cpu_info().bf16_dot_pays(isa) || altclip::kernels::onednn::use_onednn(altclip::OnednnUse::automatic))
            continue;
        INFO("bf16 at " << altclip::isa_name(isa));
        const auto fast = features("models/tiny-bf16.altclip", isa, false);
        const auto exact = features("models/tiny-bf16.altclip", isa, true);
        CHECK(fast.first.data == exact.first.data);
        CHECK(fast.second.data == exact.second.data);
    }
}

TEST_CASE("isa: a thread count the system cannot give is an error, not an abort", "[isa][threads]") {
    CHECK_THROWS_AS(altclip::kernels::ThreadPool(altclip::kMaxThreads + 1), altclip::InvalidArgument);
    altclip::ModelOptions o;
    o.num_threads = 100000;
    try {
        altclip::AltCLIPModel::from_file(data_path("models/tiny.altclip"), o);
        FAIL("no error");
    } catch (const altclip::InvalidArgument& e) {
        CHECK(std::string(e.what()).find("100000") != std::string::npos);
    }
}
