// altclip/embedding.hpp: the folder walk, content hash, model identity, query combination,
// exact top-k and the batched ImageEmbedder (against get_image_features on the same files).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <altclip/altclip.hpp>

#include "parity.hpp"
#include "temp_dir.hpp"

using altclip_test::data_path;
using altclip_test::TempDir;
namespace fs = std::filesystem;

namespace {


void write(const fs::path& p, const std::string& bytes) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
}

double dot(const float* a, const float* b, std::size_t n) {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += double(a[i]) * b[i];
    return s;
}

}  // namespace

TEST_CASE("content_hash64 is deterministic and tells contents apart", "[embedding]") {
    const std::string a = "the same bytes, more than sixteen of them", b = "the same bytes, more than sixteen of theM";
    CHECK(altclip::content_hash64(a.data(), a.size()) == altclip::content_hash64(a.data(), a.size()));
    CHECK(altclip::content_hash64(a.data(), a.size()) != altclip::content_hash64(b.data(), b.size()));
    // Length matters even when the extra bytes are zero; the empty input hashes fine.
    const std::string z1(5, '\0'), z2(6, '\0');
    CHECK(altclip::content_hash64(z1.data(), z1.size()) != altclip::content_hash64(z2.data(), z2.size()));
    CHECK(altclip::content_hash64(nullptr, 0) == altclip::content_hash64("", 0));
    // Every tail length gives distinct hashes for distinct inputs.
    std::vector<std::uint64_t> seen;
    for (int n = 0; n < 40; ++n) {
        const std::string s(static_cast<std::size_t>(n), 'x');
        seen.push_back(altclip::content_hash64(s.data(), s.size()));
    }
    std::sort(seen.begin(), seen.end());
    CHECK(std::unique(seen.begin(), seen.end()) == seen.end());
}

TEST_CASE("find_files walks folders recursively, survives symlink loops and unreadable folders", "[embedding]") {
    TempDir t("altclip_embedding");
    write(t.path / "b.jpg", "b");
    write(t.path / "a.png", "aa");
    write(t.path / "sub" / "c.gif", "ccc");
    write(t.path / "sub" / "deeper" / "d.bmp", "dddd");
    fs::create_directory_symlink("..", t.path / "sub" / "loop");          // a loop
    fs::create_directory_symlink(t.path, t.path / "sub" / "deeper" / "root");
    fs::create_symlink(t.path / "a.png", t.path / "link.png");           // a link to a file: listed
    fs::create_symlink(t.path / "nowhere", t.path / "dangling.png");     // dangling: skipped
    const auto list = altclip::find_files({t.path.string()});
    std::vector<std::string> names;
    for (const auto& f : list.files) names.push_back(fs::path(f.path).lexically_relative(t.path).string());
    CHECK(names == std::vector<std::string>{"a.png", "b.jpg", "link.png", "sub/c.gif", "sub/deeper/d.bmp"});
    CHECK(list.files[0].size == 2);
    CHECK(list.files[0].mtime_ns > 1'500'000'000LL * 1'000'000'000LL);  // after 2017: seconds since 1970 in ns
    CHECK(list.unreadable.empty());

    CHECK_THROWS_AS(altclip::find_files({(t.path / "missing").string()}), altclip::IoError);
    CHECK_THROWS_WITH(altclip::find_files({(t.path / "a.png").string()}), Catch::Matchers::Contains("not a folder"));

    if (geteuid() != 0) {  // root reads every folder
        fs::permissions(t.path / "sub", fs::perms::none);
        const auto partial = altclip::find_files({t.path.string()});
        CHECK(partial.files.size() == 3);
        REQUIRE(partial.unreadable.size() == 1);
        CHECK(partial.unreadable[0].first == (t.path / "sub").string());
        fs::permissions(t.path / "sub", fs::perms::owner_all);
    }
}

TEST_CASE("combine_query: mean of normalised positives minus negatives, renormalised", "[embedding]") {
    altclip::Tensor pos({2, 3}, {2, 0, 0, 0, 4, 0});
    altclip::Tensor neg({1, 3}, {0, 0, 5});
    const auto q = altclip::combine_query(pos, &neg);
    // (1,0,0) + (0,1,0) - (0,0,1), divided by 2, renormalised: (1,1,-1)/sqrt(3)
    const float r = 1.0f / std::sqrt(3.0f);
    CHECK(q[0] == Approx(r));
    CHECK(q[1] == Approx(r));
    CHECK(q[2] == Approx(-r));
    const auto one = altclip::combine_query(altclip::Tensor({1, 2}, {3, 4}));
    CHECK(one[0] == Approx(0.6f));
    CHECK(one[1] == Approx(0.8f));

    CHECK_THROWS_AS(altclip::combine_query(altclip::Tensor({0, 3})), altclip::InvalidArgument);
    altclip::Tensor same({1, 3}, {2, 0, 0});
    CHECK_THROWS_AS(altclip::combine_query(same, &same), altclip::InvalidArgument);  // cancels out
    altclip::Tensor other({1, 4}, {1, 0, 0, 0});
    CHECK_THROWS_AS(altclip::combine_query(same, &other), altclip::InvalidArgument);
    CHECK_THROWS_AS(altclip::combine_query(altclip::Tensor({1, 3}, {0, 0, 0})), altclip::InvalidArgument);
}

TEST_CASE("top_k equals a full sort of the dot products", "[embedding]") {
    std::mt19937 rng(7);
    std::normal_distribution<float> g;
    const std::size_t rows = 10'000, dim = 48;
    std::vector<float> m(rows * dim), q(dim);
    for (auto& v : m) v = g(rng);
    for (auto& v : q) v = g(rng);
    std::copy(m.begin() + 5 * dim, m.begin() + 6 * dim, m.begin() + 9 * dim);  // a tie: rows 5 and 9
    std::vector<std::size_t> order(rows);
    for (std::size_t i = 0; i < rows; ++i) order[i] = i;
    std::vector<double> s(rows);
    for (std::size_t i = 0; i < rows; ++i) s[i] = dot(&m[i * dim], q.data(), dim);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return s[a] > s[b]; });
    std::vector<float> scratch;
    const auto hits = altclip::top_k(m.data(), rows, dim, q, 50, &scratch);
    REQUIRE(hits.size() == 50);
    for (std::size_t i = 0; i < hits.size(); ++i) {
        CHECK(hits[i].index == order[i]);
        CHECK(hits[i].score == Approx(s[order[i]]).epsilon(1e-4));
    }
    // Ties keep the lower index first; k larger than the rows gives every row.
    std::vector<float> q5(m.begin() + 5 * dim, m.begin() + 6 * dim);
    const auto tie = altclip::top_k(m.data(), rows, dim, q5, 2);
    CHECK(tie[0].index == 5);
    CHECK(tie[1].index == 9);
    CHECK(altclip::top_k(m.data(), 3, dim, q, 10).size() == 3);
    CHECK_THROWS_AS(altclip::top_k(m.data(), rows, dim, q, 0), altclip::InvalidArgument);
    CHECK_THROWS_AS(altclip::top_k(m.data(), rows, dim, std::vector<float>(3), 1), altclip::InvalidArgument);
}

TEST_CASE("score_rows: float32 and half-float rows at every kernel level this CPU has", "[embedding]") {
    // Unit vectors of odd sizes (tails of every length below 16), scored by each level the
    // CPU allows, against float64 sums: float32 rows within float32 rounding, half-float
    // rows within half_dot_error(dim) of the float32 row's exact score.
    std::mt19937 rng(11);
    std::normal_distribution<float> g;
    for (const std::size_t dim : {1u, 7u, 16u, 33u, 768u, 1000u}) {
        for (const std::size_t rows : {1u, 3u, 4u, 5u, 70u}) {
            std::vector<float> m(rows * dim), q(dim);
            for (auto& v : m) v = g(rng);
            for (auto& v : q) v = g(rng);
            altclip::normalize(q);
            std::vector<std::uint16_t> h(m.size());
            for (std::size_t r = 0; r < rows; ++r) {
                std::vector<float> row(m.begin() + static_cast<std::ptrdiff_t>(r * dim),
                                       m.begin() + static_cast<std::ptrdiff_t>((r + 1) * dim));
                altclip::normalize(row);
                std::copy(row.begin(), row.end(), m.begin() + static_cast<std::ptrdiff_t>(r * dim));
            }
            for (std::size_t i = 0; i < m.size(); ++i) h[i] = altclip::float_to_half(m[i]);
            for (int level = 0; level <= static_cast<int>(altclip::cpu_info().effective()); ++level) {
                const auto isa = static_cast<altclip::Isa>(level);
                std::vector<float> s32(rows), s16(rows);
                altclip::score_rows(m.data(), rows, dim, q, s32.data(), isa);
                altclip::score_rows(h.data(), rows, dim, q, s16.data(), isa);
                double worst32 = 0, worst16 = 0;
                std::size_t at32 = 0, at16 = 0;
                for (std::size_t r = 0; r < rows; ++r) {
                    const double exact = dot(&m[r * dim], q.data(), dim);
                    if (std::abs(s32[r] - exact) > worst32) worst32 = std::abs(s32[r] - exact), at32 = r;
                    if (std::abs(s16[r] - exact) > worst16) worst16 = std::abs(s16[r] - exact), at16 = r;
                }
                INFO("level " << altclip::isa_name(isa) << ", dim " << dim << ", rows " << rows << ": float32 worst "
                              << worst32 << " at row " << at32 << ", half worst " << worst16 << " at row " << at16);
                CHECK(worst32 <= double(dim) * std::ldexp(1.0, -24));
                CHECK(worst16 <= altclip::half_dot_error(dim));
            }
        }
    }
    std::vector<float> s(1);
    const std::vector<std::uint16_t> h(8);
    CHECK_THROWS_AS(altclip::score_rows(h.data(), 1, 8, std::vector<float>(3), s.data()), altclip::InvalidArgument);
}

TEST_CASE("float_to_half rounds to nearest even and inverts half_to_float", "[embedding]") {
    // Every half value round-trips (NaNs stay NaN); midpoints between neighbours round to even.
    for (std::uint32_t b = 0; b < 0x10000u; ++b) {
        const auto h = static_cast<std::uint16_t>(b);
        const float f = altclip::half_to_float(h);
        if (std::isnan(f)) {
            CHECK(std::isnan(altclip::half_to_float(altclip::float_to_half(f))));
            continue;
        }
        REQUIRE(altclip::float_to_half(f) == h);
        if ((b & 0x7C00u) != 0x7C00u && (b & 0x7FFFu) != 0x7BFFu) {  // finite with a finite neighbour above
            const float up = altclip::half_to_float(static_cast<std::uint16_t>(b + 1));
            const float mid = f + (up - f) / 2;
            const auto want = static_cast<std::uint16_t>((b & 1u) ? b + 1 : b);
            REQUIRE(altclip::float_to_half(mid) == want);
        }
    }
    CHECK(altclip::float_to_half(1e6f) == 0x7C00u);
    CHECK(altclip::float_to_half(-1e6f) == 0xFC00u);
    CHECK(altclip::float_to_half(65519.f) == 0x7BFFu);  // below the midpoint to 65536 (= infinity)
    CHECK(altclip::float_to_half(65520.f) == 0x7C00u);
}

TEST_CASE("model_identity tells model files apart", "[embedding]") {
    const auto tiny = altclip::model_identity(*altclip::ModelFile::open(data_path("models/tiny.altclip")));
    const auto again = altclip::model_identity(*altclip::ModelFile::open(data_path("models/tiny.altclip")));
    const auto q8 = altclip::model_identity(*altclip::ModelFile::open(data_path("models/tiny-q8.altclip")));
    const auto real = altclip::model_identity(*altclip::ModelFile::open(data_path("models/real224.altclip")));
    CHECK(tiny == again);
    CHECK(tiny.id.size() == 16);
    CHECK(tiny.dtype == "f32");
    CHECK(q8.dtype == "q8");
    CHECK(tiny != q8);
    CHECK(tiny.id != q8.id);
    CHECK(tiny.id != real.id);
    CHECK(real.embedding_dim == 32);
}

TEST_CASE("ImageEmbedder equals get_image_features per file, reports failures, stops on request", "[embedding]") {
    const auto file = altclip::ModelFile::open(data_path("models/real224.altclip"));
    const altclip::AltCLIPModel model(file);
    const altclip::AltCLIPProcessor processor(*file);
    TempDir t("altclip_embedding");
    write(t.path / "empty.jpg", "");
    write(t.path / "notes.txt", "not an image");
    const std::vector<std::string> paths = {
        data_path("images/chelsea.png"), (t.path / "empty.jpg").string(),    data_path("images/rocket.jpg"),
        data_path("images/camera.png"),  (t.path / "notes.txt").string(),    data_path("images/palette_31x19.gif"),
        (t.path / "missing.png").string(), data_path("images/rgba_29x31.png"),
    };
    altclip::EmbedOptions options;
    options.batch_size = 3;
    const altclip::ImageEmbedder embedder(model, processor.image_processor(), options);
    std::vector<altclip::ImageEmbedding> all;
    std::vector<std::size_t> batch_sizes;
    embedder.embed_files(paths, [&](std::vector<altclip::ImageEmbedding>& batch) {
        batch_sizes.push_back(batch.size());
        for (auto& e : batch) all.push_back(std::move(e));
        return true;
    });
    CHECK(batch_sizes == std::vector<std::size_t>{3, 3, 2});
    REQUIRE(all.size() == paths.size());
    const std::int64_t dim = model.config().projection_dim;
    for (std::size_t i = 0; i < all.size(); ++i) {
        const auto& e = all[i];
        INFO(paths[i]);
        CHECK(e.index == i);
        CHECK(e.path == paths[i]);
        const bool bad = paths[i].find(t.path.string()) == 0;
        CHECK(e.ok == !bad);
        if (bad) {
            CHECK_THAT(e.error, Catch::Matchers::Contains(paths[i]));
            CHECK(e.embedding.empty());
            continue;
        }
        auto expected = model.get_image_features(processor.load_images({paths[i]}));
        altclip::l2_normalize_rows(expected);
        REQUIRE(e.embedding.size() == static_cast<std::size_t>(dim));
        CHECK(dot(e.embedding.data(), expected.ptr(), e.embedding.size()) == Approx(1.0).epsilon(1e-5));
        for (std::int64_t j = 0; j < dim; ++j) CHECK(std::fabs(e.embedding[j] - expected.ptr()[j]) < 1e-5);
        const auto bytes = altclip::read_file_bytes(paths[i]);
        CHECK(e.size == bytes.size());
        CHECK(e.content_hash == altclip::content_hash64(bytes.data(), bytes.size()));
    }
    CHECK_THAT(all[1].error, Catch::Matchers::Contains("empty"));
    CHECK_THAT(all[6].error, Catch::Matchers::Contains("cannot open"));

    // Returning false stops after that batch; an exception from the callback reaches the caller.
    int calls = 0;
    embedder.embed_files(paths, [&](std::vector<altclip::ImageEmbedding>&) { return ++calls < 2; });
    CHECK(calls == 2);
    CHECK_THROWS_WITH(embedder.embed_files(paths, [](std::vector<altclip::ImageEmbedding>&) -> bool {
                          throw altclip::IoError("disk full");
                      }),
                      "disk full");
    embedder.embed_files({}, [](std::vector<altclip::ImageEmbedding>&) -> bool { FAIL("no batch expected"); return true; });

    options.batch_size = 0;
    CHECK_THROWS_AS(altclip::ImageEmbedder(model, processor.image_processor(), options), altclip::InvalidArgument);
}

TEST_CASE("make_thumbnail averages boxes, keeps the aspect ratio and composites alpha on white", "[embedding]") {
    // 4x2: left half red, right half blue; half-transparent black in the last pixel.
    std::vector<std::uint8_t> px = {255, 0, 0, 255, 255, 0, 0, 255, 0, 0, 255, 255, 0, 0, 255, 255,
                                    255, 0, 0, 255, 255, 0, 0, 255, 0, 0, 255, 255, 0, 0, 0, 0};
    const auto img = altclip::image_from_pixels(px.data(), 4, 2, 4);
    const auto t = altclip::make_thumbnail(img, 2);
    REQUIRE(t.width == 2);
    REQUIRE(t.height == 1);
    CHECK_FALSE(t.has_alpha());
    CHECK(std::vector<int>(t.rgb.begin(), t.rgb.begin() + 3) == std::vector<int>{255, 0, 0});
    // (0,0,255) x3 and white (alpha 0) once: (64, 64, 255)
    CHECK(std::vector<int>(t.rgb.begin() + 3, t.rgb.end()) == std::vector<int>{64, 64, 255});
    const auto big = altclip::load_image(data_path("images/chelsea.png"));  // 451x300
    const auto b = altclip::make_thumbnail(big, 128);
    CHECK(b.width == 128);
    CHECK(b.height == 85);
    const auto same = altclip::make_thumbnail(img, 100);  // never enlarged
    CHECK(same.width == 4);
    CHECK(same.height == 2);
    CHECK_THROWS_AS(altclip::make_thumbnail(img, 0), altclip::InvalidArgument);
}
