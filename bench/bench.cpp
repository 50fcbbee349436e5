// altclip_bench: load time, image and text embedding latency/throughput and peak memory of
// one altclip model file, printed as one JSON object on stdout (progress on stderr).
//
//   altclip_bench --model FILE [--threads N] [--repeat N] [--batch-repeat N] [--text-repeat N]
//                 [--label-repeat N] [--warmup N] [--labels N] [--write-inputs DIR]
//                 [--embeddings FILE] [--accuracy-only] [--exact]
//
// Inputs are made here, deterministically, so every run and bench/bench_torch.py (which
// reads them back from --write-inputs) use the same numbers:
//   pixels   8 images [8, 3, S, S] of fixed pseudo-random values in the normalised range
//            (no decoding or preprocessing is timed); batch 1 uses image 0.
//   caption  16 token ids: <s>, 14 fixed pseudo-random piece ids, </s>.
//   labels   --labels short texts ("red apple", ...), tokenized and embedded in batches of 64
//            as examples/zero_shot.cpp does (tokenization is inside the timed loop).
// Measured:
//   load_s                 AltCLIPModel::from_file (open, validate, map or widen weights) plus
//                          the AltCLIPProcessor: ready to run.
//   first_image_s          the first batch-1 image embedding right after loading (for an f32
//                          file this includes faulting the mapped weights in).
//   image_b1_s             batch-1 latency: median of --repeat runs after --warmup runs.
//   image_b8_s             batch-8 latency: median of --batch-repeat runs (weights already hot).
//   text16_s               one 16-token caption: median of --text-repeat runs after --warmup.
//   labels_s               all labels, tokenize + embed in batches of 64: median of --label-repeat.
//   peak memory            getrusage ru_maxrss and VmHWM from /proc/self/status, at the end.
// --embeddings FILE writes the embeddings of the 8 images, the caption and the first label
// batch (JSON); --accuracy-only computes just those, with no timing runs.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/resource.h>

#include <nlohmann/json.hpp>

#include <altclip/altclip.hpp>

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void note(const std::string& msg) { std::cerr << "[altclip_bench] " << msg << std::endl; }

// --- the thread-count setting -------------------------------------------------------------
// --- deterministic inputs -----------------------------------------------------------------
struct SplitMix64 {
    std::uint64_t s;
    std::uint64_t next() {
        std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
};

constexpr std::int64_t kImageBatch = 8;
constexpr std::int64_t kCaptionTokens = 16;
constexpr std::size_t kLabelBatch = 64;  // as examples/zero_shot.cpp

altclip::PixelValues make_pixels(std::int64_t batch, std::int64_t channels, std::int64_t size) {
    altclip::PixelValues p;
    p.batch = batch, p.channels = channels, p.height = size, p.width = size;
    p.data.resize(static_cast<std::size_t>(batch * channels * size * size));
    SplitMix64 rng{12345};
    // (0..1 - CLIP mean) / CLIP std spans about [-1.8, 2.1].
    for (auto& v : p.data) v = static_cast<float>(-1.79 + 3.93 * rng.uniform());
    return p;
}

std::vector<std::int64_t> make_caption(const altclip::XLMRobertaTokenizer& tok) {
    // Piece ids are 4 .. vocab_size - 2 (<mask> is vocab_size - 1).
    const std::uint64_t lo = 4, span = static_cast<std::uint64_t>(tok.vocab_size() - 2) - lo + 1;
    SplitMix64 rng{777};
    std::vector<std::int64_t> ids{tok.bos_token_id()};
    while (static_cast<std::int64_t>(ids.size()) < kCaptionTokens - 1) ids.push_back(static_cast<std::int64_t>(lo + rng.next() % span));
    ids.push_back(tok.eos_token_id());
    return ids;
}

std::vector<std::string> make_labels(std::size_t n) {
    static const char* adjectives[] = {"red", "small", "old", "wooden", "striped", "wet", "shiny", "broken",
                                       "tiny", "giant", "blue", "frozen", "golden", "plastic", "sleeping",
                                       "flying", "green", "dirty", "empty", "wild"};
    static const char* nouns[] = {"apple", "cat", "dog", "car", "bicycle", "house", "tree", "boat", "chair",
                                  "table", "bird", "horse", "cup", "bottle", "guitar", "phone", "clock",
                                  "lamp", "flower", "train", "airplane", "bridge", "mountain", "river",
                                  "window", "door", "shoe", "hat", "book", "pizza", "banana", "sandwich",
                                  "kite", "umbrella", "elephant", "zebra", "giraffe", "bear", "sheep",
                                  "cow", "laptop", "keyboard", "mouse", "oven", "sink", "bed", "couch",
                                  "vase", "scissors", "toothbrush"};
    const std::size_t na = std::size(adjectives), nn = std::size(nouns);
    std::vector<std::string> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        std::string s = std::string(adjectives[i % na]) + " " + nouns[(i / na) % nn];
        if (i >= na * nn) s += " " + std::to_string(i / (na * nn));  // only past 1000 labels
        out.push_back(std::move(s));
    }
    return out;
}

// --- measuring ------------------------------------------------------------------------------
double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

template <class F>
json time_runs(const std::string& what, int warmup, int repeat, F&& f) {
    for (int i = 0; i < warmup; ++i) {
        const auto t0 = Clock::now();
        f();
        note(what + " warm-up " + std::to_string(i + 1) + "/" + std::to_string(warmup) + ": " +
             std::to_string(seconds_since(t0)) + " s");
    }
    std::vector<double> samples;
    for (int i = 0; i < repeat; ++i) {
        const auto t0 = Clock::now();
        f();
        samples.push_back(seconds_since(t0));
        note(what + " run " + std::to_string(i + 1) + "/" + std::to_string(repeat) + ": " +
             std::to_string(samples.back()) + " s");
    }
    return {{"median", median(samples)}, {"min", *std::min_element(samples.begin(), samples.end())}, {"samples", samples}};
}

/// Peak and current resident memory in bytes: getrusage and /proc/self/status.
json memory() {
    json m;
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    m["ru_maxrss_bytes"] = static_cast<std::int64_t>(ru.ru_maxrss) * 1024;  // kB on Linux
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        for (const char* key : {"VmHWM", "VmRSS"}) {
            const std::string k = std::string(key) + ":";
            if (line.rfind(k, 0) == 0) m[std::string(key) + "_bytes"] = std::stoll(line.substr(k.size())) * 1024;
        }
    }
    return m;
}

json rows(const altclip::Tensor& t, std::int64_t n) {
    json out = json::array();
    for (std::int64_t r = 0; r < std::min(n, t.dim(0)); ++r) {
        const float* p = t.slice(r);
        out.push_back(std::vector<float>(p, p + t.numel() / t.dim(0)));
    }
    return out;
}

[[noreturn]] void usage_error(const std::string& msg) {
    std::cerr << "altclip_bench: error: " << msg << "\n"
              << "usage: altclip_bench --model FILE [--threads N] [--repeat N] [--batch-repeat N] [--text-repeat N]\n"
                 "                     [--label-repeat N] [--warmup N] [--labels N] [--write-inputs DIR] [--embeddings FILE]\n"
                 "                     [--accuracy-only] [--exact]\n";
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string model_path, inputs_dir, embeddings_path;
    bool accuracy_only = false, exact = false;
    int threads = 0, repeat = 5, batch_repeat = 3, text_repeat = 20, label_repeat = 1, warmup = 1, n_labels = 1000;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") usage_error("help");
        if (a == "--accuracy-only") {
            accuracy_only = true;
            continue;
        }
        if (a == "--exact") {
            exact = true;
            continue;
        }
        if (i + 1 >= argc) usage_error("option " + a + " needs a value");
        const std::string v = argv[++i];
        auto num = [&](int min) {
            try {
                const int x = std::stoi(v);
                if (x < min) throw std::out_of_range(v);
                return x;
            } catch (const std::exception&) {
                usage_error(a + " takes an integer >= " + std::to_string(min) + ", got '" + v + "'");
            }
        };
        if (a == "--model") model_path = v;
        else if (a == "--write-inputs") inputs_dir = v;
        else if (a == "--embeddings") embeddings_path = v;
        else if (a == "--threads") threads = num(0);
        else if (a == "--repeat") repeat = num(1);
        else if (a == "--batch-repeat") batch_repeat = num(0);
        else if (a == "--text-repeat") text_repeat = num(1);
        else if (a == "--label-repeat") label_repeat = num(1);
        else if (a == "--warmup") warmup = num(0);
        else if (a == "--labels") n_labels = num(0);
        else usage_error("unknown option " + a);
    }
    if (model_path.empty()) usage_error("--model FILE is required");

    try {
        json result;
        result["model"] = model_path;
        result["threads_requested"] = threads;
        result["exact"] = exact;
        result["hardware_concurrency"] = std::thread::hardware_concurrency();

        // Load: open + validate + weights ready + processor (tokenizer, image processor).
        const auto t_load = Clock::now();
        altclip::ModelOptions options;
        options.num_threads = threads;
        options.exact = exact;
        const auto model = altclip::AltCLIPModel::from_file(model_path, options);
        const altclip::AltCLIPProcessor processor(model.file());
        result["load_s"] = seconds_since(t_load);
        result["memory_after_load"] = memory();
        const altclip::json::Value& dtype = model.file().metadata()["dtype"];
        result["dtype"] = dtype.is_string() ? dtype.as_string() : "unknown";
        result["isa"] = altclip::isa_name(model.isa());
        result["matmul_engine"] = model.matmul_engine();
        result["cpu"] = altclip::cpu_info().describe();

        const auto& cfg = model.config();
        const auto pixels8 = make_pixels(kImageBatch, cfg.vision_config.num_channels, cfg.vision_config.image_size);
        const altclip::PixelView pixels1(pixels8.data.data(), 1, pixels8.channels, pixels8.height, pixels8.width);
        const altclip::PixelView pixels8_view(pixels8);
        const auto caption = make_caption(processor.tokenizer());
        const altclip::TokenView caption_view(caption.data(), nullptr, 1, kCaptionTokens);
        const auto labels = make_labels(static_cast<std::size_t>(n_labels));

        {
            const auto t0 = Clock::now();
            (void)model.get_image_features(pixels1);
            result["first_image_s"] = seconds_since(t0);
            result["load_to_first_image_s"] = seconds_since(t_load);
            note("loaded in " + std::to_string(result["load_s"].get<double>()) + " s, first image in " +
                 std::to_string(result["first_image_s"].get<double>()) + " s");
        }

        if (!inputs_dir.empty()) {
            std::ofstream px(inputs_dir + "/pixels.f32", std::ios::binary);
            px.write(reinterpret_cast<const char*>(pixels8.data.data()),
                     static_cast<std::streamsize>(pixels8.data.size() * sizeof(float)));
            json batches = json::array();
            for (std::size_t s = 0; s < labels.size(); s += kLabelBatch) {
                const std::vector<std::string> chunk(labels.begin() + s, labels.begin() + std::min(labels.size(), s + kLabelBatch));
                const auto enc = processor(chunk);
                batches.push_back({{"batch", enc.batch}, {"seq_len", enc.seq_len}, {"input_ids", enc.input_ids}});
            }
            std::ofstream js(inputs_dir + "/inputs.json");
            js << json{{"pixels", {{"file", "pixels.f32"}, {"shape", {pixels8.batch, pixels8.channels, pixels8.height, pixels8.width}}}},
                       {"caption_ids", caption},
                       {"labels", labels},
                       {"label_batch", kLabelBatch},
                       {"label_batches", batches}}
                      .dump();
            if (!px || !js) throw altclip::IoError("could not write the inputs to " + inputs_dir);
        }

        altclip::Tensor image8_embeds, caption_embeds, first_label_embeds;
        if (accuracy_only) {
            image8_embeds = model.get_image_features(pixels8_view);
            caption_embeds = model.get_text_features(caption_view);
            if (!labels.empty()) {
                const std::vector<std::string> chunk(labels.begin(), labels.begin() + std::min(labels.size(), kLabelBatch));
                first_label_embeds = model.get_text_features(processor(chunk));
            }
        } else {
            result["image_b1_s"] = time_runs("image b1", warmup, repeat, [&] { (void)model.get_image_features(pixels1); });
            if (batch_repeat > 0) {  // --batch-repeat 0 skips the batch of 8
                result["image_b8_s"] = time_runs("image b8", 0, batch_repeat, [&] { image8_embeds = model.get_image_features(pixels8_view); });
                result["image_b8_images_per_s"] = kImageBatch / result["image_b8_s"]["median"].get<double>();
            }
            result["text16_s"] = time_runs("text 16 tokens", warmup, text_repeat, [&] { caption_embeds = model.get_text_features(caption_view); });
            if (!labels.empty()) {  // --labels 0 skips the label run
                result["labels_s"] = time_runs(std::to_string(labels.size()) + " labels", 0, label_repeat, [&] {
                    // As examples/zero_shot.cpp label_embeddings: tokenize + embed, 64 texts at a time.
                    for (std::size_t s = 0; s < labels.size(); s += kLabelBatch) {
                        const std::vector<std::string> chunk(labels.begin() + s, labels.begin() + std::min(labels.size(), s + kLabelBatch));
                        auto feats = model.get_text_features(processor(chunk));
                        if (s == 0) first_label_embeds = std::move(feats);
                    }
                });
                result["labels_count"] = labels.size();
                result["labels_per_s"] = static_cast<double>(labels.size()) / result["labels_s"]["median"].get<double>();
            }
        }
        result["memory"] = memory();

        if (!embeddings_path.empty()) {
            std::ofstream e(embeddings_path);
            e << json{{"image", rows(image8_embeds, kImageBatch)},
                      {"caption", rows(caption_embeds, 1)},
                      {"labels", first_label_embeds.numel() ? rows(first_label_embeds, static_cast<std::int64_t>(kLabelBatch)) : json::array()}}
                     .dump();
            if (!e) throw altclip::IoError("could not write " + embeddings_path);
        }
        std::cout << result.dump(2) << std::endl;
        return 0;
    } catch (const altclip::Error& e) {
        std::cerr << "altclip_bench: error: " << e.what() << "\n";
        return 1;
    }
}
