// zero_shot: rank labels (in any language) for images with AltCLIP.
//
//   zero_shot --model FILE --image PATH [--image PATH]... --label TEXT [--label TEXT]...
//             [--template "a photo of a {}"]... [--top-k K] [--json] [--threads N] [--exact]
//
// Without --template a label is used as written and the probabilities are
// softmax(logits_per_image), as AltCLIPModel.forward computes them. With templates, each
// label's text embedding is the mean of its normalised template embeddings, renormalised
// (CLIP's zero-shot evaluation). Nothing is printed on stdout unless every input succeeded.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <altclip/altclip.hpp>

#include "cli.hpp"

namespace {

const char* kUsage =
    "usage: zero_shot --model FILE --image PATH [--image PATH]... --label TEXT [--label TEXT]...\n"
    "                 [--template \"a photo of a {}\"]... [--top-k K] [--json] [--threads N] [--exact]\n"
    "                 [--max-isa LEVEL] [--verbose]\n"
    "Ranks the labels for each image with their probabilities (softmax over the labels).\n"
    "--template T: the first {} in T is replaced by the label (a T without {} gets \" LABEL\" appended);\n"
    "  several templates are averaged per label. Without --template a label is used as written.\n"
    "--top-k K: show the K most probable labels per image (default: all).\n"
    "--json: print {\"results\": [{\"image\": PATH, \"labels\": [{\"label\": TEXT, \"prob\": P}, ...]}, ...]}.\n"
    "--threads N: threads to use (default: all cores). --exact: bf16/q8 files computed in float32.\n"
    "--max-isa LEVEL: cap the kernels (portable, avx2, avx512, avx512_vnni, avx512_bf16, amx; default: the best\n"
    "  this CPU allows). --verbose: print the CPU and the kernels that run, on stderr.\n"
    "Prints nothing on stdout when an input fails; the error goes to stderr (exit 1; 2 for bad options).\n";

/// The first {} of the template replaced by the label (later ones are kept as written);
/// a template without {} gets " label" appended.
std::string fill(const std::string& tmpl, const std::string& label) {
    const auto at = tmpl.find("{}");
    if (at == std::string::npos) return tmpl + " " + label;
    return tmpl.substr(0, at) + label + tmpl.substr(at + 2);
}

/// Normalised label embeddings [labels, dim]: templates averaged as in CLIP's zero-shot.
altclip::Tensor label_embeddings(const altclip::AltCLIPModel& model, const altclip::AltCLIPProcessor& processor,
                                 const std::vector<std::string>& labels, const std::vector<std::string>& templates) {
    std::vector<std::string> texts;
    for (const auto& l : labels) {
        if (templates.empty()) texts.push_back(l);
        for (const auto& t : templates) texts.push_back(fill(t, l));
    }
    // Batches of 64 texts keep the padding (and memory) small for long label lists.
    const std::int64_t dim = model.config().projection_dim;
    altclip::Tensor all({static_cast<std::int64_t>(texts.size()), dim});
    for (std::size_t start = 0; start < texts.size(); start += 64) {
        const std::vector<std::string> chunk(texts.begin() + start, texts.begin() + std::min(texts.size(), start + 64));
        auto feats = model.get_text_features(processor(chunk));
        std::copy(feats.data.begin(), feats.data.end(), all.slice(static_cast<std::int64_t>(start)));
    }
    altclip::l2_normalize_rows(all);
    if (templates.empty()) return all;
    const auto per = static_cast<std::int64_t>(templates.size());
    altclip::Tensor out({static_cast<std::int64_t>(labels.size()), dim});
    for (std::int64_t l = 0; l < out.dim(0); ++l) {
        float* o = out.slice(l);
        for (std::int64_t t = 0; t < per; ++t) {
            const float* e = all.slice(l * per + t);
            for (std::int64_t i = 0; i < dim; ++i) o[i] += e[i];
        }
        for (std::int64_t i = 0; i < dim; ++i) o[i] /= static_cast<float>(per);
    }
    altclip::l2_normalize_rows(out);
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    const auto args = cli::parse(argc, argv, "zero_shot", {"model", "image", "label", "template", "top-k", "threads", "max-isa"}, {"verbose", "json", "exact"}, kUsage);
    const std::string model_path = args.one("model");
    const auto& images = args.all("image");
    const auto& labels = args.all("label");
    const auto& templates = args.all("template");
    if (model_path.empty()) cli::fail("zero_shot", "--model FILE is required (a file made by tools/convert.py)\n" + std::string(kUsage));
    if (images.empty()) cli::fail("zero_shot", "give at least one --image PATH\n" + std::string(kUsage));
    if (labels.empty()) cli::fail("zero_shot", "give at least one --label TEXT\n" + std::string(kUsage));
    for (const auto& l : labels) {
        if (l.empty()) cli::fail("zero_shot", "a --label is empty; give each label some text");
    }
    const long top_k = args.one("top-k").empty() ? static_cast<long>(labels.size())
                                                 : cli::parse_positive("zero_shot", "top-k", args.one("top-k"));
    try {
        const auto file = altclip::ModelFile::open(model_path);
        const altclip::AltCLIPModel model(file, cli::model_options(args, "zero_shot"));
        cli::describe(model, args, "zero_shot");
        const altclip::AltCLIPProcessor processor(*file);
        const auto pixels = processor.load_images(images);
        auto image_embeds = model.get_image_features(pixels);
        altclip::l2_normalize_rows(image_embeds);
        const auto text_embeds = label_embeddings(model, processor, labels, templates);
        const auto logits = altclip::AltCLIPModel::logits(image_embeds, text_embeds, model.logit_scale());
        const auto probs = altclip::softmax(logits);

        nlohmann::json results = nlohmann::json::array();
        std::ostringstream human;
        for (std::int64_t i = 0; i < probs.dim(0); ++i) {
            const auto n = static_cast<std::size_t>(probs.dim(1));
            const float* prob = probs.slice(i);
            std::vector<std::size_t> order(n);
            std::iota(order.begin(), order.end(), 0);
            std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return prob[a] > prob[b]; });
            order.resize(std::min<std::size_t>(n, static_cast<std::size_t>(top_k)));
            nlohmann::json ranked = nlohmann::json::array();
            human << cli::printable(images[i]) << "\n";
            for (auto j : order) {
                ranked.push_back({{"label", labels[j]}, {"prob", static_cast<double>(prob[j])}});
                char pct[32];
                std::snprintf(pct, sizeof pct, "%7.2f%%", 100.0 * prob[j]);
                human << "  " << pct << "  " << cli::printable(labels[j]) << "\n";
            }
            results.push_back({{"image", images[i]}, {"labels", std::move(ranked)}});
        }
        if (args.has("json")) {
            // A path that is not UTF-8 is printed with U+FFFD in place of its bad bytes.
            std::cout << nlohmann::json{{"results", std::move(results)}}.dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
                      << "\n";
        } else {
            std::cout << human.str();
        }
        return 0;
    } catch (const altclip::Error& e) {
        cli::fail("zero_shot", cli::printable(e.what()), 1);
    }
}
