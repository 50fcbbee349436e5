// embed: image and text embeddings of AltCLIP as one JSON object on stdout.
//
//   embed --model FILE [--image PATH]... [--text TEXT]... [--normalize] [--with-inputs]
//         [--threads N] [--exact]
//
// image_embeds / text_embeds are get_image_features / get_text_features (projected,
// L2-normalised only with --normalize), one list per input, in order. --with-inputs adds
// pixel_values (flat CHW per image), input_ids (without padding) and attention_mask.
// Nothing is printed on stdout unless every input succeeded.
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <altclip/altclip.hpp>

#include "cli.hpp"

namespace {

const char* kUsage =
    "usage: embed --model FILE [--image PATH]... [--text TEXT]... [--normalize] [--with-inputs]\n"
    "             [--threads N] [--exact] [--max-isa LEVEL] [--verbose]\n"
    "Prints {\"image_embeds\": [[...], ...], \"text_embeds\": [[...], ...]} as JSON: one list per input, in order;\n"
    "image_embeds only when --image is given, text_embeds only when --text is given.\n"
    "--normalize: L2-normalise each embedding. --with-inputs: add pixel_values (with --image),\n"
    "  input_ids and attention_mask (with --text).\n"
    "--threads N: threads to use (default: all cores). --exact: bf16/q8 files computed in float32.\n"
    "--max-isa LEVEL: cap the kernels (portable, avx2, avx512, avx512_vnni, avx512_bf16, amx; default: the best\n"
    "  this CPU allows). --verbose: print the CPU and the kernels that run, on stderr.\n";

nlohmann::json rows(const altclip::Tensor& t) {
    nlohmann::json out = nlohmann::json::array();
    const auto n = t.dim(0), d = t.numel() / t.dim(0);
    for (std::int64_t i = 0; i < n; ++i) out.push_back(std::vector<float>(t.slice(i), t.slice(i) + d));
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    const auto args = cli::parse(argc, argv, "embed", {"model", "image", "text", "threads", "max-isa"}, {"verbose", "normalize", "with-inputs", "exact"}, kUsage);
    const std::string model_path = args.one("model");
    if (model_path.empty()) cli::fail("embed", "--model FILE is required (a file made by tools/convert.py)\n" + std::string(kUsage));
    const auto& images = args.all("image");
    const auto& texts = args.all("text");
    if (images.empty() && texts.empty()) cli::fail("embed", "give at least one --image or --text\n" + std::string(kUsage));
    try {
        const auto file = altclip::ModelFile::open(model_path);
        const altclip::AltCLIPModel model(file, cli::model_options(args, "embed"));
        cli::describe(model, args, "embed");
        const altclip::AltCLIPProcessor processor(*file);
        nlohmann::json out = nlohmann::json::object();
        if (!images.empty()) {
            const auto pixels = processor.load_images(images);
            auto feats = model.get_image_features(pixels);
            if (args.has("normalize")) altclip::l2_normalize_rows(feats);
            out["image_embeds"] = rows(feats);
            if (args.has("with-inputs")) {
                nlohmann::json px = nlohmann::json::array();
                const std::size_t per = pixels.data.size() / static_cast<std::size_t>(pixels.batch);
                for (std::int64_t b = 0; b < pixels.batch; ++b) {
                    px.push_back(std::vector<float>(pixels.data.begin() + b * per, pixels.data.begin() + (b + 1) * per));
                }
                out["pixel_values"] = std::move(px);
            }
        }
        if (!texts.empty()) {
            const auto enc = processor(texts);
            auto feats = model.get_text_features(enc);
            if (args.has("normalize")) altclip::l2_normalize_rows(feats);
            out["text_embeds"] = rows(feats);
            if (args.has("with-inputs")) {
                nlohmann::json ids = nlohmann::json::array(), mask = nlohmann::json::array();
                for (std::int64_t b = 0; b < enc.batch; ++b) {
                    auto row = enc.input_ids.begin() + b * enc.seq_len;
                    auto mrow = enc.attention_mask.begin() + b * enc.seq_len;
                    ids.push_back(std::vector<std::int64_t>(row, row + enc.lengths[b]));
                    mask.push_back(std::vector<std::int64_t>(mrow, mrow + enc.seq_len));
                }
                out["input_ids"] = std::move(ids);
                out["attention_mask"] = std::move(mask);
            }
        }
        std::cout << out.dump() << "\n";
        return 0;
    } catch (const altclip::Error& e) {
        cli::fail("embed", cli::printable(e.what()), 1);
    }
}
