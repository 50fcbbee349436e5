// altclip_ab: the working tree's model against an earlier revision's, in ONE process,
// alternating, on the same model file and inputs. On a shared machine whose speed drifts by
// 10-30% from minute to minute, two programs timed one after the other cannot show a 5%
// change; two models timed in turn inside one process, over many rounds, can (both see the
// same drift). bench/ab.sh builds it: the earlier revision's include/ is extracted with
// `git archive` and compiled with its namespace renamed (altclip -> altclip_base), so both
// versions of every inline function live side by side.
//
//   altclip_ab FILE [ROUNDS] [THREADS]
//
// Per round: one batch-1 image and three 16-token texts per side, the side that goes first
// alternating. Prints min and median per side, base/new (above 1: the working tree is faster)
// and the cosine between the two sides' embeddings (1 when the change keeps the numbers).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#ifndef ALTCLIP_AB_BASE
#error "build with bench/ab.sh: ALTCLIP_AB_BASE names the earlier revision's include/altclip/model.hpp"
#endif
#define altclip altclip_base
#include ALTCLIP_AB_BASE
#undef altclip
#include <altclip/model.hpp>

namespace {

using Clock = std::chrono::steady_clock;

template <class F>
double time_ms(F&& f) {
    const auto t0 = Clock::now();
    f();
    return std::chrono::duration<double>(Clock::now() - t0).count() * 1e3;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
    double ab = 0, aa = 0, bb = 0;
    for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
        ab += double(a[i]) * b[i];
        aa += double(a[i]) * a[i];
        bb += double(b[i]) * b[i];
    }
    return ab / std::sqrt(aa * bb);
}

void report(const char* what, std::vector<double> base, std::vector<double> now, double cos) {
    std::sort(base.begin(), base.end());
    std::sort(now.begin(), now.end());
    const std::size_t m = base.size() / 2;
    std::printf("%-6s base min %8.1f med %8.1f ms | new min %8.1f med %8.1f ms | base/new min %.3f med %.3f | cosine %.7f\n",
                what, base[0], base[m], now[0], now[m], base[0] / now[0], base[m] / now[m], cos);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: altclip_ab FILE [ROUNDS] [THREADS]\n");
        return 2;
    }
    const std::string path = argv[1];
    const int rounds = argc > 2 ? std::max(1, std::atoi(argv[2])) : 8;
    const int threads = argc > 3 ? std::atoi(argv[3]) : 0;
    try {
        altclip_base::ModelOptions base_options;
        base_options.num_threads = threads;
        altclip::ModelOptions options;
        options.num_threads = threads;
        const auto base = altclip_base::AltCLIPModel::from_file(path, base_options);
        const auto now = altclip::AltCLIPModel::from_file(path, options);
        const auto& vc = now.config().vision_config;
        const std::int64_t c = vc.num_channels, s = vc.image_size;
        std::mt19937 rng(3);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        std::vector<float> pixels(static_cast<std::size_t>(c * s * s));
        for (auto& v : pixels) v = nd(rng);
        std::vector<std::int64_t> ids(16);
        ids.front() = 0;  // <s>
        ids.back() = 2;   // </s>
        for (std::size_t i = 1; i + 1 < ids.size(); ++i) ids[i] = 5 + static_cast<std::int64_t>(rng() % 200);
        const altclip_base::PixelView base_pixels(pixels.data(), 1, c, s, s);
        const altclip::PixelView now_pixels(pixels.data(), 1, c, s, s);
        const altclip_base::TokenView base_tokens(ids.data(), nullptr, 1, 16);
        const altclip::TokenView now_tokens(ids.data(), nullptr, 1, 16);
        std::vector<float> base_image, now_image, base_text, now_text;
        (void)base.get_image_features(base_pixels);  // weights faulted in on both sides
        (void)now.get_image_features(now_pixels);
        std::vector<double> image[2], text[2];
        for (int r = 0; r < rounds; ++r) {
            for (int turn = 0; turn < 2; ++turn) {
                const bool first_base = r % 2 == 0;
                if ((turn == 0) == first_base) {
                    image[0].push_back(time_ms([&] { base_image = base.get_image_features(base_pixels).data; }));
                    for (int t = 0; t < 3; ++t)
                        text[0].push_back(time_ms([&] { base_text = base.get_text_features(base_tokens).data; }));
                } else {
                    image[1].push_back(time_ms([&] { now_image = now.get_image_features(now_pixels).data; }));
                    for (int t = 0; t < 3; ++t)
                        text[1].push_back(time_ms([&] { now_text = now.get_text_features(now_tokens).data; }));
                }
            }
        }
        std::printf("%s, kernels %s, %d rounds\n", path.c_str(), altclip::isa_name(now.isa()), rounds);
        report("image", image[0], image[1], cosine(base_image, now_image));
        report("text", text[0], text[1], cosine(base_text, now_text));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "altclip_ab: %s\n", e.what());
        return 1;
    }
    return 0;
}
