// The model file reader: every kind of corrupt file made here from a good one must fail
// with its own clear FormatError (never a crash), and a good file opens without copying.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <altclip/model.hpp>
#include <altclip/processor.hpp>

#include "parity.hpp"

using altclip_test::data_path;
using altclip_test::read_bytes;
using Catch::Matchers::Contains;

namespace {

/// A parsed copy of a good model file that a test can break and re-serialize.
struct Parts {
    nlohmann::json header;
    std::string data;  // the data section

    static Parts of(const std::string& bytes) {
        Parts p;
        std::uint64_t n = 0;
        for (int i = 0; i < 8; ++i) n |= std::uint64_t(static_cast<unsigned char>(bytes[16 + i])) << (8 * i);
        p.header = nlohmann::json::parse(bytes.substr(24, n));
        const std::size_t start = (24 + n + 63) / 64 * 64;
        p.data = bytes.substr(start);
        return p;
    }
    std::string bytes(std::uint32_t version = altclip::format::kVersion) const {
        const std::string h = header.dump();
        std::string out("ALTCLIP\0", 8);
        const std::uint32_t reserved = 0;
        const std::uint64_t n = h.size();
        out.append(reinterpret_cast<const char*>(&version), 4);
        out.append(reinterpret_cast<const char*>(&reserved), 4);
        out.append(reinterpret_cast<const char*>(&n), 8);
        out += h;
        out.resize((out.size() + 63) / 64 * 64, '\0');
        return out + data;
    }
};

const std::string kTiny = "models/tiny.altclip";

std::string tiny_bytes() {
    static const std::string b = read_bytes(data_path(kTiny));
    return b;
}

/// The text and image embeddings of two files of the same model, on the same inputs, differ
/// by at most `rel` (relative to the largest value; 0: the same bits).
void check_same_embeddings(std::shared_ptr<const altclip::ModelFile> a, std::shared_ptr<const altclip::ModelFile> b,
                           double rel) {
    const altclip::AltCLIPModel model_a(a), model_b(b);
    const altclip::AltCLIPProcessor processor(*b);
    const auto tokens = processor(std::vector<std::string>{"a photo of a cat", "ein Foto eines Hundes"});
    const auto pixels = processor.load_images(std::vector<std::string>{data_path("images/chelsea.png")});
    auto check = [rel](const char* what, const altclip::Tensor& x, const altclip::Tensor& y) {
        REQUIRE(x.shape == y.shape);
        const altclip_test::Diff d = altclip_test::compare(x.ptr(), y.data);
        INFO(what << ": max abs diff " << d.max_abs << " at " << altclip_test::index_str(d.worst, y.shape)
                  << ", relative " << d.rel() << ", tolerance " << rel);
        if (rel == 0) CHECK(d.max_abs == 0);
        else CHECK(d.rel() < rel);
    };
    check("text features", model_a.get_text_features(tokens), model_b.get_text_features(tokens));
    check("image features", model_a.get_image_features(pixels), model_b.get_image_features(pixels));
}

void load(const std::string& bytes) {
    altclip::AltCLIPModel m(altclip::ModelFile::from_bytes(bytes, "broken.altclip"));
}

}  // namespace

TEST_CASE("a good model file opens from disk and from memory", "[model_file]") {
    const auto file = altclip::ModelFile::open(data_path(kTiny));
    CHECK(file->config().text_config.hidden_size == 32);
    CHECK(file->config().vision_config.patch_size == 8);
    CHECK(file->sentencepiece_model().size() > 1000);
    CHECK(file->preprocessor_config().contains("image_mean"));
    // The weights are used in place: an f32 tensor's data points into the mapping.
    const auto& t = file->container().tensor("text_projection.weight");
    CHECK(reinterpret_cast<std::uintptr_t>(t.data) % 64 == 0);
    REQUIRE_NOTHROW(load(tiny_bytes()));
    REQUIRE_NOTHROW(load(Parts::of(tiny_bytes()).bytes()));  // the test's writer round-trips
}

TEST_CASE("a version-1 file (every matrix row-major) opens and gives the same numbers", "[model_file]") {
    // Files written before the panel layout (format version 2) hold every matrix row-major;
    // they still load, through the kernels that pack the panels per call.
    const std::string good = tiny_bytes();
    const auto file = altclip::ModelFile::from_bytes(good, "tiny.altclip");
    Parts p = Parts::of(good);
    int matrices = 0;
    for (auto& item : p.header["tensors"].items()) {
        if (item.value().value("layout", "rows") != "panels") continue;
        const std::vector<float> v = file->container().tensor(item.key()).to_f32();  // tiny.altclip is f32
        p.data.resize((p.data.size() + 63) / 64 * 64, '\0');
        item.value()["offset"] = p.data.size();
        item.value()["size"] = v.size() * 4;
        item.value().erase("layout");
        p.data.append(reinterpret_cast<const char*>(v.data()), v.size() * 4);
        ++matrices;
    }
    REQUIRE(matrices > 0);
    check_same_embeddings(altclip::ModelFile::from_bytes(p.bytes(1), "old.altclip"), file, 1e-5);
}

TEST_CASE("a file with 64-row panels (format version 3) gives the numbers of its 32-row twin (version 2)",
          "[model_file]") {
    // The test models are version 2 files: their matrices in 32-row panels ("panels"). The same
    // models with every such matrix stored as tools/convert.py now writes it, in 64-row panels
    // ("panels64", docs/format.md), must give exactly the same numbers: the kernels read the
    // same values in the same order of sums, only from other addresses (and, where the products
    // go through oneDNN, bf16 matrices in place instead of a reordered copy).
    for (const char* name : {"models/tiny.altclip", "models/tiny-bf16.altclip"}) {
        INFO(name);
        const std::string good = read_bytes(data_path(name));
        const auto file = altclip::ModelFile::from_bytes(good, name);
        Parts p = Parts::of(good);
        REQUIRE(p.header["version"] == 2);
        int matrices = 0;
        for (auto& item : p.header["tensors"].items()) {
            if (item.value().value("layout", "rows") != "panels") continue;
            const altclip::TensorView& t = file->container().tensor(item.key());
            REQUIRE(t.panel_rows == altclip::kPanelRowsV2);
            const std::vector<float> v = t.to_f32();
            const std::int64_t rows = t.matrix_rows(), cols = t.matrix_cols(), P = altclip::kPanelRows;
            const bool bf16 = t.dtype == altclip::DType::bf16;
            const std::int64_t g = bf16 ? 2 : 1, units = (cols + g - 1) / g;
            std::vector<std::uint32_t> units_out(static_cast<std::size_t>((rows + P - 1) / P * units * P), 0u);
            for (std::int64_t r = 0; r < rows; ++r)
                for (std::int64_t c = 0; c < cols; ++c) {
                    std::uint32_t bits;
                    std::memcpy(&bits, &v[static_cast<std::size_t>(r * cols + c)], 4);
                    std::uint32_t& u = units_out[static_cast<std::size_t>(altclip::panel_unit(r, c, cols, g, P))];
                    if (!bf16) u = bits;
                    else u |= (bits >> 16) << (16 * (c % 2));  // exact: the values came from bfloat16
                }
            p.data.resize((p.data.size() + 63) / 64 * 64, '\0');
            item.value()["offset"] = p.data.size();
            item.value()["size"] = units_out.size() * 4;
            item.value()["layout"] = "panels64";
            p.data.append(reinterpret_cast<const char*>(units_out.data()), units_out.size() * 4);
            ++matrices;
        }
        REQUIRE(matrices > 0);
        p.header["version"] = 3;
        check_same_embeddings(altclip::ModelFile::from_bytes(p.bytes(3), "panels64.altclip"), file, 0);
    }
}

TEST_CASE("a missing file is an IoError naming it", "[model_file]") {
    CHECK_THROWS_AS(altclip::ModelFile::open("/nonexistent/model.altclip"), altclip::IoError);
    CHECK_THROWS_WITH(altclip::ModelFile::open("/nonexistent/model.altclip"), Contains("/nonexistent/model.altclip"));
}

TEST_CASE("a file truncated anywhere fails cleanly", "[model_file]") {
    const std::string good = tiny_bytes();
    // Every cut in the preamble and header, then a spread of cuts through the data.
    std::vector<std::size_t> cuts;
    for (std::size_t i = 0; i < 2000 && i < good.size(); i += 7) cuts.push_back(i);
    for (std::size_t i = 2000; i < good.size(); i += good.size() / 97) cuts.push_back(i);
    cuts.push_back(good.size() - 1);
    for (auto cut : cuts) {
        INFO("truncated to " << cut << " of " << good.size() << " bytes");
        CHECK_THROWS_AS(load(good.substr(0, cut)), altclip::FormatError);
    }
    CHECK_THROWS_WITH(load(good.substr(0, 10)), Contains("shorter than the 24-byte preamble"));
    CHECK_THROWS_WITH(load(good.substr(0, 100)), Contains("runs past the end of the file"));
    CHECK_THROWS_WITH(load(good.substr(0, good.size() - 1)), Contains("outside the data section"));
}

TEST_CASE("each kind of corruption has its own clear error", "[model_file]") {
    const std::string good = tiny_bytes();
    auto broken = [&](std::function<void(Parts&)> f) {
        Parts p = Parts::of(good);
        f(p);
        return p.bytes();
    };
    auto& T = "tensors";
    const std::string name = "text_projection.weight";

    SECTION("bad magic") {
        std::string b = good;
        b[0] = 'X';
        CHECK_THROWS_WITH(load(b), Contains("bad magic") && Contains("broken.altclip"));
    }
    SECTION("unknown version") {
        std::string b = good;
        b[8] = 4;
        CHECK_THROWS_WITH(load(b), Contains("format version 4") && Contains("reads versions 1 to 3"));
        b[8] = 0;
        CHECK_THROWS_WITH(load(b), Contains("format version 0"));
    }
    SECTION("header length past the end of the file") {
        std::string b = good;
        for (int i = 0; i < 8; ++i) b[16 + i] = i < 3 ? char(0xff) : 0;
        CHECK_THROWS_WITH(load(b), Contains("runs past the end of the file"));
        for (int i = 0; i < 8; ++i) b[16 + i] = char(0xff);
        CHECK_THROWS_WITH(load(b), Contains("exceeds the limit"));
    }
    SECTION("header not JSON") {
        std::string b = good;
        b[24] = '#';
        CHECK_THROWS_WITH(load(b), Contains("not valid JSON"));
    }
    SECTION("overlapping tensors") {
        auto b = broken([&](Parts& p) {
            p.header[T][name]["offset"] = p.header[T]["visual_projection.weight"]["offset"];
        });
        CHECK_THROWS_WITH(load(b), Contains("overlap"));
    }
    SECTION("misaligned offset") {
        auto b = broken([&](Parts& p) { p.header[T][name]["offset"] = p.header[T][name]["offset"].get<std::uint64_t>() + 4; });
        CHECK_THROWS_WITH(load(b), Contains("not aligned to 64"));
    }
    SECTION("offset past the end") {
        auto b = broken([&](Parts& p) { p.header[T][name]["offset"] = std::uint64_t(1) << 62; });
        CHECK_THROWS_WITH(load(b), Contains("outside the data section") && Contains(name));
    }
    SECTION("byte size that does not match shape x dtype") {
        auto b = broken([&](Parts& p) { p.header[T][name]["size"] = 4; });
        CHECK_THROWS_WITH(load(b), Contains("its shape and dtype need") && Contains(name));
    }
    SECTION("a dimension product that overflows") {
        auto b = broken([&](Parts& p) {
            p.header[T][name]["shape"] = {std::uint64_t(1) << 40, std::uint64_t(1) << 40};
        });
        CHECK_THROWS_WITH(load(b), Contains("overflows 64 bits") && Contains(name));
        auto b2 = broken([&](Parts& p) { p.header[T][name]["shape"] = {std::uint64_t(1) << 62}; });
        CHECK_THROWS_WITH(load(b2), Contains("overflows 64 bits"));
    }
    SECTION("unknown dtype") {
        auto b = broken([&](Parts& p) { p.header[T][name]["dtype"] = "f64"; });
        CHECK_THROWS_WITH(load(b), Contains("unknown dtype") && Contains(name));
    }
    SECTION("a wrong shape for the config") {
        REQUIRE(Parts::of(good).header[T][name]["layout"] == "panels");
        auto b = broken([&](Parts& p) {  // transposed [16, 24], its bytes taken as a row-major [24, 16]
            p.header[T][name]["shape"] = {24, 16};
            p.header[T][name]["layout"] = "rows";
            p.header[T][name]["size"] = 24 * 16 * 4;
        });
        CHECK_THROWS_WITH(load(b), Contains("'" + name + "' has shape [24, 16], the config implies [16, 24]"));
    }
    SECTION("a layout that is unknown, or panels of what panels cannot hold") {
        auto b = broken([&](Parts& p) { p.header[T][name]["layout"] = "diagonal"; });
        CHECK_THROWS_WITH(load(b), Contains("unknown layout") && Contains(name));
        auto b2 = broken([&](Parts& p) { p.header[T]["text_model.pre_LN.weight"]["layout"] = "panels"; });
        CHECK_THROWS_WITH(load(b2), Contains("the panel layout is for f32 and bf16 matrices") &&
                                        Contains("text_model.pre_LN.weight"));
        auto b3 = broken([&](Parts& p) {  // padding rows: a [16, 24] matrix takes a whole 32-row panel
            p.header[T][name]["size"] = 16 * 24 * 4;
        });
        CHECK_THROWS_WITH(load(b3), Contains("its shape and dtype need 3072") && Contains(name));
    }
    SECTION("a missing and an extra tensor, both reported") {
        auto b = broken([&](Parts& p) {
            p.header[T]["text_projection.extra"] = p.header[T][name];
            p.header[T].erase(name);
        });
        CHECK_THROWS_WITH(load(b), Contains("missing tensor '" + name + "'") &&
                                       Contains("unexpected tensor 'text_projection.extra'") &&
                                       Contains("re-run tools/convert.py"));
    }
    SECTION("a config that does not match the tensors") {
        auto b = broken([&](Parts& p) { p.header["config"]["text_config"]["num_hidden_layers"] = 3; });
        CHECK_THROWS_WITH(load(b), Contains("missing tensor 'text_model.roberta.encoder.layer.2.attention.self.query.weight'"));
    }
    SECTION("a config field missing") {
        auto b = broken([&](Parts& p) { p.header["config"]["vision_config"].erase("patch_size"); });
        CHECK_THROWS_AS(load(b), altclip::ConfigError);
        CHECK_THROWS_WITH(load(b), Contains("missing field 'patch_size'"));
    }
    SECTION("trailing bytes") {
        CHECK_THROWS_WITH(load(good + std::string(64, '\0')), Contains("trailing bytes"));
    }
    SECTION("no tokenizer blob") {
        auto b = broken([&](Parts& p) { p.header.erase("blobs"); });
        CHECK_THROWS_WITH(load(b), Contains("sentencepiece.bpe.model"));
    }
    SECTION("a reference file is not a model file") {
        CHECK_THROWS_WITH(altclip::ModelFile::open(data_path("models/tiny.ref")), Contains("not a model file"));
    }
}

TEST_CASE("a tower loads alone from a full model file", "[model_file]") {
    const auto text = altclip::AltCLIPTextModel::from_file(data_path(kTiny));
    const auto vision = altclip::AltCLIPVisionModel::from_file(data_path(kTiny));
    CHECK(text.config().project_dim == 24);
    CHECK(vision.config().image_size == 32);
}
