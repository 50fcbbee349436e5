// Input limits (include/altclip/limits.hpp, image.hpp, container.hpp, config.hpp; listed with
// their reasons in docs/reliability.md): each is checked before the work it bounds and fails
// with a typed error whose message names the limit.
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <altclip/altclip.hpp>
#include <altclip/limits.hpp>

#include "parity.hpp"

using altclip_test::data_path;
using altclip_test::read_bytes;
using Catch::Matchers::Contains;

namespace {

/// A PNG signature and IHDR chunk claiming width x height (8-bit RGB), no pixel data.
/// stb_image does not check chunk CRCs, so they are left zero.
std::string png_header(std::uint32_t width, std::uint32_t height) {
    std::string s("\x89PNG\r\n\x1a\n", 8);
    auto be32 = [&](std::uint32_t v) {
        for (int i = 3; i >= 0; --i) s += static_cast<char>((v >> (8 * i)) & 0xff);
    };
    be32(13);
    s += "IHDR";
    be32(width);
    be32(height);
    s += std::string("\x08\x02\x00\x00\x00", 5);  // bit depth 8, colour type 2 (RGB)
    be32(0);                                       // CRC
    return s;
}

/// A model file's parts: header JSON and data section (as tests/test_model_file.cpp).
struct Parts {
    nlohmann::json header;
    std::string data;

    static Parts of(const std::string& bytes) {
        Parts p;
        std::uint64_t n = 0;
        for (int i = 0; i < 8; ++i) n |= std::uint64_t(static_cast<unsigned char>(bytes[16 + i])) << (8 * i);
        p.header = nlohmann::json::parse(bytes.substr(24, n));
        p.data = bytes.substr((24 + n + 63) / 64 * 64);
        return p;
    }
    std::string bytes() const {
        const std::string h = header.dump();
        std::string out("ALTCLIP\0\x01\0\0\0\0\0\0\0", 16);
        for (int i = 0; i < 8; ++i) out += static_cast<char>((std::uint64_t(h.size()) >> (8 * i)) & 0xff);
        out += h;
        out.resize((out.size() + 63) / 64 * 64, '\0');
        return out + data;
    }
};

void load(const std::string& bytes) {
    altclip::AltCLIPModel m(altclip::ModelFile::from_bytes(bytes, "limits.altclip"));
}

}  // namespace

TEST_CASE("limits: image pixel count and side length", "[limits]") {
    using altclip::decode_image;
    // 12000 x 9000 = 108 M pixels: stb reads the header; refused before any pixel is allocated.
    const std::string big = png_header(12000, 9000);
    CHECK_THROWS_AS(decode_image(big.data(), big.size(), "big.png"), altclip::ImageError);
    CHECK_THROWS_WITH(decode_image(big.data(), big.size(), "big.png"),
                      Contains("big.png: image too large (12000x9000 pixels") && Contains("100000000 pixels in all"));
    // 40000 x 40000: stb's own header check refuses it (over 2^30 bytes); the IHDR size is reported.
    const std::string huge = png_header(40000, 40000);
    CHECK_THROWS_WITH(decode_image(huge.data(), huge.size(), "huge.png"),
                      Contains("image too large (40000x40000") && Contains("65536 per side"));
    // One side over 65,536 with few pixels in all.
    const std::string wide = png_header(70000, 1);
    CHECK_THROWS_WITH(decode_image(wide.data(), wide.size(), "wide.png"), Contains("image too large (70000x1"));
    // The same limits for caller-decoded pixels and for an Image passed to the processor.
    const std::uint8_t px[3] = {1, 2, 3};
    CHECK_THROWS_WITH(altclip::image_from_pixels(px, 70000, 1, 3), Contains("image too large"));
    altclip::Image fake;
    fake.width = 20000;
    fake.height = 20000;
    const altclip::CLIPImageProcessor processor{altclip::CLIPImageProcessorConfig{}};
    CHECK_THROWS_WITH(processor.preprocess(fake), Contains("image too large (20000x20000"));
    // The limit itself is accepted by the size check (not decoded here: 300 MB).
    CHECK_NOTHROW(altclip::detail::check_image_dimensions(10000, 10000, "x"));
    CHECK_THROWS(altclip::detail::check_image_dimensions(10000, 10001, "x"));
}

TEST_CASE("limits: text length in bytes", "[limits]") {
    const auto tok = altclip::XLMRobertaTokenizer::from_file(data_path("sentencepiece.bpe.model"));
    std::string at_limit;
    while (at_limit.size() + 16 <= altclip::kMaxTextBytes) at_limit += "a photo of cats ";
    at_limit.resize(altclip::kMaxTextBytes, 'x');
    const auto ids = tok.encode(at_limit);  // accepted, and truncated to the model's length
    CHECK(ids.size() == 512);
    const std::string over = at_limit + "x";
    CHECK_THROWS_AS(tok.encode(over), altclip::TextError);
    CHECK_THROWS_WITH(tok.encode(over), Contains("text is 1048577 bytes, above the limit of 1048576 bytes"));
    CHECK_THROWS_WITH(tok({std::string("ok"), over}), Contains("text 1 of the batch is 1048577 bytes"));
}

TEST_CASE("limits: batch size of the tokenizer, image processor and towers", "[limits]") {
    const std::int64_t n = altclip::kMaxBatchSize + 1;
    const auto tok = altclip::XLMRobertaTokenizer::from_file(data_path("sentencepiece.bpe.model"));
    const std::vector<std::string> texts(static_cast<std::size_t>(n));
    CHECK_THROWS_AS(tok(texts), altclip::InvalidArgument);
    CHECK_THROWS_WITH(tok(texts), Contains("batch of 65537 texts exceeds the limit of 65536"));
    const std::vector<std::string> at_limit(static_cast<std::size_t>(altclip::kMaxBatchSize));
    CHECK(tok(at_limit).batch == altclip::kMaxBatchSize);

    const std::vector<altclip::Image> images(static_cast<std::size_t>(n));
    const altclip::CLIPImageProcessor processor{altclip::CLIPImageProcessorConfig{}};
    CHECK_THROWS_WITH(processor(images), Contains("batch of 65537 images exceeds the limit of 65536"));

    // The towers check the batch before reading any input.
    const auto model = altclip::AltCLIPModel::from_file(data_path("models/tiny.altclip"));
    const std::int64_t ids[2] = {0, 2};
    const float px[1] = {0};
    CHECK_THROWS_WITH(model.get_text_features(altclip::TokenView(ids, nullptr, n, 2)),
                      Contains("batch of 65537 texts exceeds the limit of 65536"));
    CHECK_THROWS_WITH(model.get_image_features(altclip::PixelView(px, n, 3, 32, 32)),
                      Contains("batch of 65537 images exceeds the limit of 65536"));
    CHECK_THROWS_WITH(model.get_image_features(altclip::PixelView(px, 1, 3, 70000, 32), true),
                      Contains("exceed the limit of 65536 per side"));
}

TEST_CASE("limits: model file header size, tensor sizes and config values", "[limits]") {
    const std::string good = read_bytes(data_path("models/tiny.altclip"));
    REQUIRE_NOTHROW(load(good));

    SECTION("header size") {
        std::string b = good;
        const std::uint64_t over = altclip::format::kMaxHeaderBytes + 1;
        for (int i = 0; i < 8; ++i) b[16 + i] = static_cast<char>((over >> (8 * i)) & 0xff);
        CHECK_THROWS_AS(load(b), altclip::FormatError);
        CHECK_THROWS_WITH(load(b), Contains("header size 100000001 exceeds the limit of 100000000 bytes"));
    }
    SECTION("a tensor larger than the file") {
        Parts p = Parts::of(good);
        auto& t = p.header["tensors"]["text_projection.weight"];
        t["shape"] = {std::uint64_t(1) << 30, std::uint64_t(1) << 30};  // 2^62 bytes of f32
        t["size"] = (std::uint64_t(1) << 62);
        CHECK_THROWS_WITH(load(p.bytes()), Contains("text_projection.weight") && Contains("outside the data section"));
    }
    SECTION("a tensor whose byte size overflows") {
        Parts p = Parts::of(good);
        p.header["tensors"]["text_projection.weight"]["shape"] = {std::uint64_t(1) << 32, std::uint64_t(1) << 31};
        CHECK_THROWS_WITH(load(p.bytes()), Contains("byte size overflows 64 bits"));
    }
    SECTION("a tensor of too high rank") {
        Parts p = Parts::of(good);
        p.header["tensors"]["text_projection.weight"]["shape"] = std::vector<int>(9, 1);
        CHECK_THROWS_WITH(load(p.bytes()), Contains("of rank above 8"));
    }
    SECTION("config values") {
        // Sizes computed from the config ((image_size / patch_size)^2, pad_token_id + 2, ...)
        // would overflow without the cap.
        for (const char* field : {"image_size", "hidden_size"}) {
            Parts p = Parts::of(good);
            p.header["config"]["vision_config"][field] = std::int64_t(1) << 62;
            INFO(field);
            CHECK_THROWS_AS(load(p.bytes()), altclip::ConfigError);
            CHECK_THROWS_WITH(load(p.bytes()), Contains(std::string("field '") + field +
                                                        "' must be an integer >= 1 and <= 16777216"));
        }
        Parts p = Parts::of(good);
        p.header["config"]["text_config"]["vocab_size"] = std::numeric_limits<std::int64_t>::max();
        p.header["config"]["text_config"]["pad_token_id"] = std::numeric_limits<std::int64_t>::max() - 1;
        CHECK_THROWS_WITH(load(p.bytes()), Contains("<= 16777216"));
    }
}
