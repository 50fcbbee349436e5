// Compiled (never linked) by the ctest test tower_only_headers (tests/CMakeLists.txt): a
// program with its own preprocessing includes the towers and the model without stb_image,
// the Pillow resampler, sentencepiece or nlohmann_json. The test puts tests/tower_only/poison
// first on the include path, where stb_image.h, sentencepiece_processor.h and
// nlohmann/json.hpp fail the build (the model file's JSON header is read by
// altclip/format/json.hpp).
#include <altclip/model.hpp>
#include <altclip/text.hpp>
#include <altclip/vision.hpp>

#include <cstdint>
#include <vector>

#if defined(STBI_INCLUDE_STB_IMAGE_H) || defined(SENTENCEPIECE_PROCESSOR_H_) || defined(INCLUDE_NLOHMANN_JSON_HPP_)
#error "stb_image, sentencepiece or nlohmann_json reached a tower header"
#endif

// The input types, filled by the program's own preprocessing.
altclip::Tensor image_features(const altclip::AltCLIPModel& model, const altclip::PixelValues& pixels) {
    return model.get_image_features(pixels);
}

altclip::Tensor text_features(const altclip::AltCLIPTextModel& text, const std::vector<std::int64_t>& ids) {
    const altclip::TokenView tokens(ids.data(), nullptr, 1, static_cast<std::int64_t>(ids.size()));
    return text.pooler_output(tokens);
}

altclip::BaseModelOutputWithPooling vision(const altclip::AltCLIPVisionModel& tower, const std::vector<float>& chw) {
    return tower.forward(altclip::PixelView(chw.data(), 1, 3, 224, 224));
}
