// Thread safety: one model, processor and tokenizer shared by 8 threads at once, each
// thread on its own inputs, must give exactly (bit for bit) what one thread gives alone.
// The kernels are deterministic for a given input: Eigen's single-threaded GEMM and our
// loops do not depend on which thread runs them, so no tolerance is needed. If the model
// gains an internal thread pool (`num_threads`), the default it uses is what is compared
// here, and the comparison is still against the same object run from one thread.
// scripts/sanitize.sh runs these under ThreadSanitizer ("[threads]").
#include <atomic>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <altclip/altclip.hpp>

#include "parity.hpp"

using altclip_test::data_path;

namespace {

constexpr int kThreads = 8;

std::string read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

bool same_bits(const altclip::Tensor& a, const altclip::Tensor& b) {
    return a.shape == b.shape && a.data.size() == b.data.size() &&
           std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)) == 0;
}

// Different inputs per thread: texts of different lengths and scripts, different images.
const std::vector<std::string> kTexts = {
    "a photo of a cat",
    "一张狗的照片",
    "",
    "a rocket on the launch pad, seen from far away at dawn",
    "Ein Foto einer Katze <mask> im Garten",
    "fotografía de un cohete",
    "   spaces   and\ttabs\n",
    "кошка сидит на окне"};
const std::vector<std::string> kImages = {
    "images/chelsea.png",       "images/rocket.jpg",        "images/camera.png",  "images/rgb_64x48.jpg",
    "images/palette_31x19.png", "images/rgba_29x31.png",    "images/rgb_41x80.png", "images/grey_LA_33x27.png"};

struct Single {  // what one thread computes for input i
    altclip::Tensor text, image, logits;
};

/// Runs `work(i)` for i in [0, kThreads) on kThreads threads started together, `rounds` times each.
template <class F>
void run_together(F work, int rounds = 1) {
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            ++ready;
            while (ready.load() < kThreads) std::this_thread::yield();  // start at once
            for (int r = 0; r < rounds; ++r) work((t + r) % kThreads);
        });
    }
    for (auto& th : threads) th.join();
}

void check_model(const std::string& model_name) {
    const auto model = altclip::AltCLIPModel::from_file(data_path(model_name));
    const altclip::AltCLIPProcessor processor(model.file());

    std::vector<altclip::BatchEncoding> tokens;
    std::vector<altclip::PixelValues> pixels;
    std::vector<Single> expected(kThreads);
    for (int i = 0; i < kThreads; ++i) {
        tokens.push_back(processor({kTexts[i]}));
        pixels.push_back(processor.load_images({data_path(kImages[i])}));
        expected[i].text = model.get_text_features(tokens[i]);
        expected[i].image = model.get_image_features(pixels[i]);
        expected[i].logits = model.forward(tokens[i], pixels[i]).logits_per_image;
    }
    // Different inputs do give different results (the test would be weak otherwise).
    REQUIRE_FALSE(same_bits(expected[0].text, expected[1].text));
    REQUIRE_FALSE(same_bits(expected[0].image, expected[1].image));

    std::vector<Single> got(kThreads);
    std::atomic<int> mismatches{0};
    run_together([&](int i) {
        Single s;
        s.text = model.get_text_features(tokens[i]);
        s.image = model.get_image_features(pixels[i]);
        s.logits = model.forward(tokens[i], pixels[i]).logits_per_image;
        if (!same_bits(s.text, expected[i].text) || !same_bits(s.image, expected[i].image) ||
            !same_bits(s.logits, expected[i].logits)) {
            ++mismatches;
        }
    });
    CHECK(mismatches.load() == 0);

    // A batch of all inputs from every thread at once gives the same as one thread.
    std::vector<std::string> texts(kTexts.begin(), kTexts.end());
    std::vector<std::string> paths;
    for (const auto& p : kImages) paths.push_back(data_path(p));
    const auto batch_tokens = processor(texts);
    const auto batch_pixels = processor.load_images(paths);
    const auto batch_expected = model.forward(batch_tokens, batch_pixels);
    std::atomic<int> batch_mismatches{0};
    run_together([&](int) {
        const auto o = model.forward(batch_tokens, batch_pixels);
        if (!same_bits(o.logits_per_text, batch_expected.logits_per_text) ||
            !same_bits(o.text_embeds, batch_expected.text_embeds) ||
            !same_bits(o.image_embeds, batch_expected.image_embeds)) {
            ++batch_mismatches;
        }
    });
    CHECK(batch_mismatches.load() == 0);
}

}  // namespace

TEST_CASE("threads: one model run from 8 threads at once gives the single-threaded results", "[threads]") {
    const std::string name = GENERATE(as<std::string>{}, "models/tiny.altclip", "models/real224.altclip",
                                      // bf16 and int8 products (through oneDNN in altclip_tests_onednn)
                                      "models/tiny-bf16.altclip", "models/tiny-q8.altclip");
    INFO(name);
    check_model(name);
}

TEST_CASE("threads: models loaded and dropped from several threads at once", "[threads]") {
    const std::string path = data_path("models/tiny.altclip");
    const auto bytes = read_bytes(path);
    const auto reference = altclip::AltCLIPModel::from_file(path);
    const altclip::AltCLIPProcessor processor(reference.file());
    const auto tokens = processor({"a photo of a cat"});
    const auto expected = reference.get_text_features(tokens);
    std::atomic<int> mismatches{0};
    run_together([&](int i) {
        // Half from disk (shared mapping code), half from memory.
        const auto m = i % 2 ? altclip::AltCLIPModel::from_file(path)
                             : altclip::AltCLIPModel(altclip::ModelFile::from_bytes(bytes, "mem.altclip"));
        if (!same_bits(m.get_text_features(tokens), expected)) ++mismatches;
    });
    CHECK(mismatches.load() == 0);
}

TEST_CASE("threads: processor, tokenizer and decoder shared by 8 threads", "[threads]") {
    const auto file = altclip::ModelFile::open(data_path("models/real224.altclip"));
    const altclip::AltCLIPProcessor processor(*file);
    const altclip::XLMRobertaTokenizer spm_tokenizer =
        altclip::XLMRobertaTokenizer::from_file(data_path("sentencepiece.bpe.model"));

    std::vector<std::string> image_bytes;
    std::vector<std::vector<float>> pixels;
    std::vector<std::vector<std::int64_t>> ids, spm_ids;
    std::vector<altclip::BatchEncoding> batches;
    for (int i = 0; i < kThreads; ++i) {
        image_bytes.push_back(read_bytes(data_path(kImages[i])));
        const auto img = altclip::decode_image(image_bytes[i].data(), image_bytes[i].size(), kImages[i]);
        pixels.push_back(processor.image_processor().preprocess(img));
        ids.push_back(processor.tokenizer().encode(kTexts[i]));
        spm_ids.push_back(spm_tokenizer.encode(kTexts[i]));
        batches.push_back(processor({kTexts[i], kTexts[(i + 1) % kThreads], kTexts[(i + 3) % kThreads]}));
    }
    std::atomic<int> mismatches{0}, errors{0};
    run_together(
        [&](int i) {
            const auto img = altclip::decode_image(image_bytes[i].data(), image_bytes[i].size(), kImages[i]);
            if (processor.image_processor().preprocess(img) != pixels[i]) ++mismatches;
            if (processor.tokenizer().encode(kTexts[i]) != ids[i]) ++mismatches;
            if (spm_tokenizer.encode(kTexts[i]) != spm_ids[i]) ++mismatches;
            const auto b = processor({kTexts[i], kTexts[(i + 1) % kThreads], kTexts[(i + 3) % kThreads]});
            if (b.input_ids != batches[i].input_ids || b.attention_mask != batches[i].attention_mask) ++mismatches;
            // Errors thrown concurrently carry their own message (stb's reason is thread-local).
            try {
                altclip::decode_image("not an image", 12, "bad" + std::to_string(i));
            } catch (const altclip::ImageError& e) {
                if (std::string(e.what()).find("bad" + std::to_string(i) + ":") != 0) ++errors;
            }
            try {
                processor.tokenizer().encode(std::string("\xff", 1) + std::to_string(i));
            } catch (const altclip::TextError& e) {
                if (std::string(e.what()).find("0xFF") == std::string::npos) ++errors;
            }
        },
        3);
    CHECK(mismatches.load() == 0);
    CHECK(errors.load() == 0);
}
