// Image files and texts -> AltCLIPProcessor -> AltCLIPModel.forward, against transformers'
// AltCLIPProcessor + AltCLIPModel on the same files (tools/make_test_models.py, "pipeline.*"
// in tests/data/models/real224.ref, which uses the real BAAI/AltCLIP preprocessor config);
// and the example programs, run as a user runs them.
#include <array>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <altclip/altclip.hpp>

#include "parity.hpp"
#include "json_nlohmann.hpp"

using altclip_test::check_close;
using altclip_test::data_path;
using altclip_test::quote;
using altclip_test::run;

namespace {

constexpr double kRelTol = 1e-4;

struct Pipeline {
    altclip::Container ref{data_path("models/real224.ref")};
    nlohmann::json meta = altclip_test::to_nlohmann(ref.header()["metadata"]["pipeline"]);
    std::vector<std::string> images, labels, templates;
    Pipeline() {
        for (const auto& p : meta["images"]) images.push_back(data_path(p.get<std::string>()));
        labels = meta["labels"].get<std::vector<std::string>>();
        templates = meta["templates"].get<std::vector<std::string>>();
    }
};

std::string example(const std::string& name) { return std::string(ALTCLIP_BINARY_DIR) + "/examples/" + name; }

}  // namespace

TEST_CASE("processor and forward equal AltCLIPProcessor + AltCLIPModel on image files", "[pipeline][parity]") {
    Pipeline p;
    const auto file = altclip::ModelFile::open(data_path("models/real224.altclip"));
    const altclip::AltCLIPModel model(file);
    const altclip::AltCLIPProcessor processor(*file);

    const auto pixels = processor.load_images(p.images);
    const auto expected_px = p.ref.tensor("pipeline.pixel_values").to_f32();
    const auto d = altclip_test::compare(pixels.data.data(), expected_px);
    INFO("pixel_values: max abs diff " << d.max_abs << " at flat index " << d.worst);
    REQUIRE(pixels.data.size() == expected_px.size());
    CHECK(d.max_abs < 1e-6);

    const auto enc = processor(p.labels);
    CHECK(enc.input_ids == p.ref.tensor("pipeline.input_ids").to_i64());

    const auto out = model.forward(enc, pixels);
    check_close(p.ref, "pipeline.logits_per_image", out.logits_per_image.ptr(), out.logits_per_image.data.size(), kRelTol);
}

#ifdef ALTCLIP_HAVE_EXAMPLES
TEST_CASE("zero_shot --json ranks labels as the reference does", "[pipeline][examples]") {
    Pipeline p;
    const auto probs = p.ref.tensor("pipeline.probs").to_f32();
    const auto template_probs = p.ref.tensor("pipeline.template_probs").to_f32();
    const std::size_t n_labels = p.labels.size();
    for (const bool with_templates : {false, true}) {
        std::string cmd = example("zero_shot") + " --json --model " + quote(data_path("models/real224.altclip"));
        for (const auto& i : p.images) cmd += " --image " + quote(i);
        for (const auto& l : p.labels) cmd += " --label " + quote(l);
        if (with_templates) for (const auto& t : p.templates) cmd += " --template " + quote(t);
        int status = 0;
        const auto out = nlohmann::json::parse(run(cmd, status));
        REQUIRE(status == 0);
        const auto& expected = with_templates ? template_probs : probs;
        REQUIRE(out["results"].size() == p.images.size());
        for (std::size_t i = 0; i < p.images.size(); ++i) {
            const auto& r = out["results"][i];
            CHECK(r["image"] == p.images[i]);
            REQUIRE(r["labels"].size() == n_labels);
            double previous = 2;
            for (const auto& entry : r["labels"]) {
                const auto j = static_cast<std::size_t>(
                    std::find(p.labels.begin(), p.labels.end(), entry["label"].get<std::string>()) - p.labels.begin());
                REQUIRE(j < n_labels);
                const double got = entry["prob"], want = expected[i * n_labels + j];
                INFO("templates " << with_templates << ", image " << i << ", label " << p.labels[j]);
                CHECK(std::fabs(got - want) < 1e-4 * std::max(1.0, std::fabs(want)));
                CHECK(got <= previous);  // ranked
                previous = got;
            }
        }
    }
}

TEST_CASE("the example programs fail cleanly on bad input, printing nothing on stdout", "[examples]") {
    const std::string model = quote(data_path("models/real224.altclip"));
    const std::string good = quote(data_path("images/chelsea.png"));
    struct Case { std::string args, message; };
    const std::vector<Case> cases = {
        {"--model /nonexistent.altclip --image " + good + " --label cat", "/nonexistent.altclip"},
        {"--model " + model + " --image /nonexistent.png --label cat", "/nonexistent.png"},
        {"--model " + model + " --image " + good, "--label"},
        {"--model " + model + " --label cat", "--image"},
        {"--model " + model + " --image " + good + " --image " + quote(data_path("sentencepiece.bpe.model")) + " --label cat",
         "sentencepiece.bpe.model"},
        {"--model " + model + " --image " + good + " --label cat --top-k 0", "--top-k"},
        {"--model " + quote(data_path("models/real224.ref")) + " --image " + good + " --label cat", "not a model file"},
    };
    for (const auto& c : cases) {
        int status = 0;
        const auto out = run(example("zero_shot") + " " + c.args + " 2>&1 >/dev/null", status);
        INFO("zero_shot " << c.args << "\n-> " << out);
        CHECK(status != 0);
        CHECK_THAT(out, Catch::Matchers::Contains(c.message));
        const auto stdout_only = run(example("zero_shot") + " " + c.args + " 2>/dev/null", status);
        CHECK(stdout_only.empty());
    }
    int status = 0;
    const auto out = run(example("embed") + " --model " + model + " --image " + good + " --image /nonexistent.png 2>/dev/null", status);
    CHECK(status != 0);
    CHECK(out.empty());
}

TEST_CASE("embed prints the reference embeddings and inputs", "[pipeline][examples]") {
    const altclip::Container ref(data_path("models/tiny.ref"));
    const auto texts = altclip_test::to_nlohmann(ref.header()["metadata"]["texts"]).get<std::vector<std::string>>();
    std::string cmd = example("embed") + " --with-inputs --model " + quote(data_path("models/tiny.altclip"));
    for (const auto& t : texts) cmd += " --text " + quote(t);
    int status = 0;
    const auto out = nlohmann::json::parse(run(cmd, status));
    REQUIRE(status == 0);
    std::vector<float> flat;
    for (const auto& row : out["text_embeds"]) for (float v : row) flat.push_back(v);
    check_close(ref, "text_embeds", flat.data(), flat.size(), kRelTol);
    const auto ids = ref.tensor("text.input_ids").to_i64();
    const auto L = ref.tensor("text.input_ids").shape[1];
    for (std::size_t b = 0; b < texts.size(); ++b) {
        const auto got = out["input_ids"][b].get<std::vector<std::int64_t>>();
        std::vector<std::int64_t> want;
        for (std::int64_t t = 0; t < L && ids[b * L + t] != 1; ++t) want.push_back(ids[b * L + t]);
        CHECK(got == want);
    }
}
#endif

#ifdef ALTCLIP_HAVE_EXAMPLES
TEST_CASE("the README's classify example prints the reference logits", "[pipeline][examples]") {
    Pipeline p;
    std::string cmd = example("classify") + " " + quote(data_path("models/real224.altclip")) + " " + quote(p.images[0]);
    for (const auto& l : p.labels) cmd += " " + quote(l);
    int status = 0;
    std::istringstream out(run(cmd, status));
    REQUIRE(status == 0);
    std::vector<float> logits;
    std::string line;
    for (std::size_t j = 0; j < p.labels.size() && std::getline(out, line); ++j) {  // then "top: LABEL"
        CHECK(line.substr(0, line.find('\t')) == p.labels[j]);
        logits.push_back(std::stof(line.substr(line.find('\t') + 1)));
    }
    REQUIRE(logits.size() == p.labels.size());
    const auto all = p.ref.tensor("pipeline.logits_per_image").to_f32();
    const std::vector<float> first(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(p.labels.size()));
    const auto d = altclip_test::compare(logits.data(), first);
    INFO("max abs diff " << d.max_abs);
    CHECK(d.rel() < 1e-4);
}
#endif

#ifdef ALTCLIP_HAVE_EXAMPLES
TEST_CASE("embed --image prints the reference pixel values and the library's image embeddings", "[pipeline][examples]") {
    Pipeline p;
    const std::string model_path = data_path("models/real224.altclip");
    std::string cmd = example("embed") + " --with-inputs --normalize --model " + quote(model_path);
    for (const auto& i : p.images) cmd += " --image " + quote(i);
    int status = 0;
    const auto out = nlohmann::json::parse(run(cmd, status));
    REQUIRE(status == 0);
    REQUIRE(out["pixel_values"].size() == p.images.size());
    std::vector<float> px;
    for (const auto& row : out["pixel_values"]) for (float v : row) px.push_back(v);
    const auto expected_px = p.ref.tensor("pipeline.pixel_values").to_f32();
    REQUIRE(px.size() == expected_px.size());
    const auto d = altclip_test::compare(px.data(), expected_px);
    INFO("pixel_values: max abs diff " << d.max_abs << " at flat index " << d.worst);
    CHECK(d.max_abs < 1e-6);
    // --normalize: the forward pass's normalised image_embeds.
    const auto file = altclip::ModelFile::open(model_path);
    const altclip::AltCLIPModel model(file);
    const altclip::AltCLIPProcessor processor(*file);
    const auto o = model.forward(processor(p.labels), processor.load_images(p.images));
    std::vector<float> emb;
    for (const auto& row : out["image_embeds"]) for (float v : row) emb.push_back(v);
    const auto de = altclip_test::compare(emb.data(), o.image_embeds.data);
    INFO("image_embeds: max abs diff " << de.max_abs);
    CHECK(de.rel() < 1e-5);
}
#endif
