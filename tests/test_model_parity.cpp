// Parity of the towers, the heads and forward() with transformers' AltCLIPModel, on the
// random test models of tools/make_test_models.py (reference values in tests/data/models/*.ref).
#include <algorithm>
#include <string>

#include <catch2/catch.hpp>

#include <altclip/model.hpp>

#include "parity.hpp"

using altclip_test::check_close;
using altclip_test::data_path;

namespace {

// float32 against float32: max |a - e| / max |e| per tensor.
constexpr double kRelTol = 1e-4;

altclip::PixelView pixels_of(const altclip::TensorView& t, std::vector<float>& keep) {
    keep = t.to_f32();
    return {keep.data(), t.shape[0], t.shape[1], t.shape[2], t.shape[3]};
}

struct Tokens {
    std::vector<std::int64_t> ids, mask;
    altclip::TokenView view;
};
Tokens tokens_of(const altclip::Container& ref, const std::string& prefix) {
    Tokens t;
    const auto& ids = ref.tensor(prefix + "input_ids");
    t.ids = ids.to_i64();
    if (ref.has_tensor(prefix + "attention_mask")) t.mask = ref.tensor(prefix + "attention_mask").to_i64();
    t.view = {t.ids.data(), t.mask.empty() ? nullptr : t.mask.data(), ids.shape[0], ids.shape[1]};
    return t;
}

}  // namespace

TEST_CASE("every module's output equals the reference in float32", "[model][parity]") {
    const std::string name = GENERATE(as<std::string>{}, "tiny", "wide", "real224");
    INFO("model " << name);
    const auto model = altclip::AltCLIPModel::from_file(data_path("models/" + name + ".altclip"));
    const altclip::Container ref(data_path("models/" + name + ".ref"));

    std::vector<float> px_keep;
    const auto px = pixels_of(ref.tensor("vision.pixel_values"), px_keep);
    const auto tok = tokens_of(ref, "text.");

    SECTION("vision tower: embeddings after pre_layrnorm, each layer, last_hidden_state, pooler") {
        const auto out = model.vision_model.forward(px, false, /*output_hidden_states=*/true);
        REQUIRE(out.hidden_states.size() == static_cast<std::size_t>(model.config().vision_config.num_hidden_layers + 1));
        for (std::size_t i = 0; i < out.hidden_states.size(); ++i) {
            const auto& h = out.hidden_states[i];
            check_close(ref, "vision.hidden_states." + std::to_string(i), h.ptr(), h.data.size(), kRelTol);
        }
        check_close(ref, "vision.last_hidden_state", out.last_hidden_state.ptr(), out.last_hidden_state.data.size(), kRelTol);
        check_close(ref, "vision.pooler_output", out.pooler_output.ptr(), out.pooler_output.data.size(), kRelTol);
    }
    SECTION("text tower: embeddings, each layer, last_hidden_state, pooler") {
        const auto out = model.text_model.forward(tok.view, /*output_hidden_states=*/true);
        REQUIRE(out.hidden_states.size() == static_cast<std::size_t>(model.config().text_config.num_hidden_layers + 1));
        for (std::size_t i = 0; i < out.hidden_states.size(); ++i) {
            const auto& h = out.hidden_states[i];
            check_close(ref, "text.hidden_states." + std::to_string(i), h.ptr(), h.data.size(), kRelTol);
        }
        check_close(ref, "text.last_hidden_state", out.last_hidden_state.ptr(), out.last_hidden_state.data.size(), kRelTol);
        check_close(ref, "text.pooler_output", out.pooler_output.ptr(), out.pooler_output.data.size(), kRelTol);
    }
    SECTION("vision pooler_output (the last layer on the class tokens only) equals the reference and forward's") {
        REQUIRE(px.batch >= 2);  // a class token read from the wrong image's rows would show
        const auto pooled = model.vision_model.pooler_output(px);
        check_close(ref, "vision.pooler_output", pooled.ptr(), pooled.data.size(), kRelTol);
        const auto full = model.vision_model.forward(px).pooler_output;
        REQUIRE(pooled.shape == full.shape);
        const auto d = altclip_test::compare(pooled.ptr(), full.data);
        INFO("pooler_output vs forward's: max abs diff " << d.max_abs << " at " << d.worst);
        CHECK(d.rel() < 1e-5);
    }
    SECTION("get_image_features and get_text_features (projections)") {
        const auto img = model.get_image_features(px);
        check_close(ref, "image_embeds", img.ptr(), img.data.size(), kRelTol);
        const auto txt = model.get_text_features(tok.view);
        check_close(ref, "text_embeds", txt.ptr(), txt.data.size(), kRelTol);
    }
    SECTION("forward: normalised embeddings and logits") {
        const auto out = model.forward(tok.view, px);
        check_close(ref, "forward.image_embeds", out.image_embeds.ptr(), out.image_embeds.data.size(), kRelTol);
        check_close(ref, "forward.text_embeds", out.text_embeds.ptr(), out.text_embeds.data.size(), kRelTol);
        check_close(ref, "forward.logits_per_image", out.logits_per_image.ptr(), out.logits_per_image.data.size(), kRelTol);
        check_close(ref, "forward.logits_per_text", out.logits_per_text.ptr(), out.logits_per_text.data.size(), kRelTol);
    }
    SECTION("a text alone equals the same text in a padded batch") {
        const auto single = tokens_of(ref, "single.");
        const auto alone = model.get_text_features(single.view);
        check_close(ref, "single.text_embeds", alone.ptr(), alone.data.size(), kRelTol);
        const auto batch = model.get_text_features(tok.view);
        const auto last = batch.dim(0) - 1;  // the single text is the batch's last
        const auto d = altclip_test::compare(batch.slice(last), alone.data);
        INFO("padded batch vs alone: max abs diff " << d.max_abs);
        CHECK(d.rel() < 1e-5);
    }
    SECTION("pooler_output packs the real tokens without padding and equals forward's pooler") {
        // The reference batch holds texts of different lengths, right-padded.
        REQUIRE(std::count(tok.mask.begin(), tok.mask.end(), 0) > 0);
        const auto full = model.text_model.forward(tok.view).pooler_output;
        const auto packed = model.text_model.pooler_output(tok.view);
        REQUIRE(packed.shape == full.shape);
        const auto d = altclip_test::compare(packed.ptr(), full.data);
        INFO("packed vs padded: max abs diff " << d.max_abs << " at " << d.worst);
        CHECK(d.rel() < 1e-5);
        // A mask that is not right padding (a hole in the first text) goes the padded way.
        auto holed = tok;
        holed.mask[1] = 0;
        holed.view.attention_mask = holed.mask.data();
        holed.view.input_ids = holed.ids.data();
        const auto via_forward = model.text_model.forward(holed.view).pooler_output;
        CHECK(model.text_model.pooler_output(holed.view).data == via_forward.data);
    }
    SECTION("a batch of images equals the images one by one") {
        const auto batch = model.get_image_features(px);
        const std::int64_t per = px.channels * px.height * px.width;
        for (std::int64_t b = 0; b < px.batch; ++b) {
            altclip::PixelView one{px.data + b * per, 1, px.channels, px.height, px.width};
            const auto alone = model.get_image_features(one);
            const auto d = altclip_test::compare(batch.slice(b), alone.data);
            INFO("image " << b << ": max abs diff " << d.max_abs);
            CHECK(d.rel() < 1e-5);
        }
    }
}

TEST_CASE("interpolate_pos_encoding equals the reference at other input sizes", "[model][parity]") {
    const std::string name = GENERATE(as<std::string>{}, "tiny", "wide");
    INFO("model " << name);
    const auto model = altclip::AltCLIPModel::from_file(data_path("models/" + name + ".altclip"));
    const altclip::Container ref(data_path("models/" + name + ".ref"));
    std::vector<float> keep;
    const auto px = pixels_of(ref.tensor("interp.pixel_values"), keep);
    CHECK_THROWS_AS(model.get_image_features(px), altclip::InvalidArgument);
    const auto out = model.vision_model.forward(px, /*interpolate_pos_encoding=*/true);
    check_close(ref, "interp.vision.last_hidden_state", out.last_hidden_state.ptr(), out.last_hidden_state.data.size(), kRelTol);
    check_close(ref, "interp.vision.pooler_output", out.pooler_output.ptr(), out.pooler_output.data.size(), kRelTol);
    const auto img = model.get_image_features(px, true);
    check_close(ref, "interp.image_embeds", img.ptr(), img.data.size(), kRelTol);
}

TEST_CASE("f16, bf16 and q8 files equal the reference run on the same rounded weights", "[model][parity][dtype]") {
    const std::string dtype = GENERATE(as<std::string>{}, "f16", "bf16", "q8");
    INFO("dtype " << dtype);
    altclip::ModelOptions exact;
    exact.exact = true;  // bf16, q8: weights widened in the kernels, float32 math
    const auto model = altclip::AltCLIPModel::from_file(data_path("models/tiny-" + dtype + ".altclip"), exact);
    const altclip::Container ref(data_path("models/tiny.ref"));
    std::vector<float> keep;
    const auto px = pixels_of(ref.tensor("vision.pixel_values"), keep);
    const auto tok = tokens_of(ref, "text.");
    // The weights are the f32 model's rounded through the dtype; the reference ran on the
    // same rounded weights in float32, so the same float32 tolerance holds.
    const auto img = model.get_image_features(px);
    check_close(ref, dtype + ".image_embeds", img.ptr(), img.data.size(), kRelTol);
    const auto txt = model.get_text_features(tok.view);
    check_close(ref, dtype + ".text_embeds", txt.ptr(), txt.data.size(), kRelTol);
    const auto out = model.forward(tok.view, px);
    check_close(ref, dtype + ".forward.logits_per_image", out.logits_per_image.ptr(), out.logits_per_image.data.size(), kRelTol);
    // Against the float32 model: the rounding error itself, stated as a bound.
    const double vs_f32 = dtype == "f16" ? 5e-3 : dtype == "bf16" ? 3e-2 : 6e-2;
    check_close(ref, "image_embeds", img.ptr(), img.data.size(), vs_f32);
    check_close(ref, "text_embeds", txt.ptr(), txt.data.size(), vs_f32);
}

TEST_CASE("bf16 and q8 files with low-precision math stay close to the reference on the rounded weights",
          "[model][parity][dtype]") {
    // Default options: on a CPU with AVX512_BF16 / AVX512_VNNI the activations are rounded
    // to bfloat16 / int8 (per-row scale) at every matrix product (elsewhere this is the
    // exact path again).
    const std::string dtype = GENERATE(as<std::string>{}, "bf16", "q8");
    INFO("dtype " << dtype);
    const auto model = altclip::AltCLIPModel::from_file(data_path("models/tiny-" + dtype + ".altclip"));
    const altclip::Container ref(data_path("models/tiny.ref"));
    std::vector<float> keep;
    const auto px = pixels_of(ref.tensor("vision.pixel_values"), keep);
    const auto tok = tokens_of(ref, "text.");
    const auto img = model.get_image_features(px);
    const auto txt = model.get_text_features(tok.view);
    // Bounds: a few times what was measured on this tiny model (bf16 ~5e-3, q8 ~2e-2).
    const double tol = dtype == "bf16" ? 2e-2 : 6e-2;
    check_close(ref, dtype + ".image_embeds", img.ptr(), img.data.size(), tol);
    check_close(ref, dtype + ".text_embeds", txt.ptr(), txt.data.size(), tol);
}
