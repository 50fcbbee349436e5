// altclip: embeddings for search. What a program that indexes and searches photos needs
// from the model, independent of how it stores them:
//   - find_files: a recursive folder walk that survives symlink loops and unreadable folders;
//   - content_hash64: a fast 64-bit hash of a file's bytes (to find a moved file again);
//   - model_identity: what identifies the model file that made an embedding;
//   - ImageEmbedder: embeds many image files in batches, decoding and preprocessing the next
//     batch on another thread while the model runs; files that cannot be read or decoded are
//     reported per file and never stop the run;
//   - normalize / combine_query: unit vectors and rclip-style "+"/"-" query combination;
//   - score_rows / top_k_scores / top_k: the exact scan of unit vectors (float32 or half
//     floats), whole or in blocks, with kernels chosen at run time.
// Nothing here prints, exits or keeps global state; every failure is an altclip::Error.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <sys/stat.h>

#include "kernels/cpu.hpp"
#include "kernels/scan.hpp"

#include "errors.hpp"
#include "image.hpp"
#include "image_processor.hpp"
#include "model.hpp"
#include "model_file.hpp"
#include "tensor.hpp"

namespace altclip {

// ---------------------------------------------------------------------------------------
// Hashing

/// A 64-bit hash of a byte string (not cryptographic): 8-byte words folded with two
/// multiply-rotate lanes, the length and a final avalanche mix. Equal bytes give equal
/// hashes on every platform (words are read little-endian).
inline std::uint64_t content_hash64(const void* data, std::size_t size, std::uint64_t seed = 0) {
    constexpr std::uint64_t k1 = 0x9E3779B97F4A7C15ull, k2 = 0xC2B2AE3D27D4EB4Full, k3 = 0x165667B19E3779F9ull;
    auto rotl = [](std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); };
    auto word = [](const unsigned char* p) {
        std::uint64_t w = 0;
        for (int i = 7; i >= 0; --i) w = (w << 8) | p[i];
        return w;
    };
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint64_t a = seed ^ k1, b = seed ^ k2;
    std::size_t i = 0;
    for (; i + 16 <= size; i += 16) {
        a = rotl(a ^ (word(p + i) * k2), 29) * k1;
        b = rotl(b ^ (word(p + i + 8) * k3), 31) * k2;
    }
    unsigned char tail[16] = {};
    if (size > i) std::memcpy(tail, p + i, size - i);
    a = rotl(a ^ (word(tail) * k2), 29) * k1;
    b = rotl(b ^ (word(tail + 8) * k3), 31) * k2;
    std::uint64_t h = a ^ rotl(b, 17) ^ (static_cast<std::uint64_t>(size) * k3);
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return h;
}

/// Reads a whole file (up to max_bytes). Throws IoError naming the file.
inline std::vector<char> read_file_bytes(const std::string& path, std::uint64_t max_bytes = std::uint64_t(1) << 30) {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    if (!f) throw IoError(path + ": cannot open file (missing, or no read permission)");
    const std::streamoff size = f.tellg();
    if (size < 0) throw IoError(path + ": cannot read the file's size");
    if (static_cast<std::uint64_t>(size) > max_bytes) {
        throw ImageError(path + ": file of " + std::to_string(size) + " bytes is larger than any image this reads (" +
                         std::to_string(max_bytes) + " bytes); not an image");
    }
    std::vector<char> bytes(static_cast<std::size_t>(size));
    f.seekg(0);
    if (size > 0 && !f.read(bytes.data(), size)) throw IoError(path + ": I/O error while reading the file");
    return bytes;
}

/// Identifies the model file an embedding came from: a hash of its config, its tensor table
/// (names, dtypes, shapes) and the bytes of both projection matrices, plus the dtype and
/// the embedding size. Two conversions of one checkpoint to the same dtype are the same model.
struct ModelIdentity {
    std::string id;     // 16 hex digits
    std::string dtype;  // "f32", "f16", "bf16", "q8" (the converter's metadata), or "unknown"
    std::int64_t embedding_dim = 0;

    bool operator==(const ModelIdentity& o) const { return id == o.id && dtype == o.dtype && embedding_dim == o.embedding_dim; }
    bool operator!=(const ModelIdentity& o) const { return !(*this == o); }
    std::string describe() const { return "model " + id + " (" + dtype + ", " + std::to_string(embedding_dim) + "-d embeddings)"; }
};

inline ModelIdentity model_identity(const ModelFile& file) {
    ModelIdentity m;
    const auto& h = file.container().header();
    std::string table = h.at("config").dump();
    for (const auto& [name, t] : file.container().tensors()) {
        table += "\n" + name + ":" + dtype_name(t.dtype);
        for (auto d : t.shape) table += "," + std::to_string(d);
    }
    std::uint64_t x = content_hash64(table.data(), table.size());
    for (const char* name : {"visual_projection.weight", "text_projection.weight"}) {
        if (file.container().has_tensor(name)) {
            const auto& t = file.container().tensor(name);
            x = content_hash64(t.data, t.nbytes, x);
        }
    }
    static const char* hex = "0123456789abcdef";
    for (int i = 60; i >= 0; i -= 4) m.id += hex[(x >> i) & 15];
    const json::Value& dt = file.metadata()["dtype"];
    m.dtype = dt.is_string() ? dt.as_string() : "unknown";
    m.embedding_dim = file.config().projection_dim;
    return m;
}

// ---------------------------------------------------------------------------------------
// Folder walk

/// What find_files found: regular files (symlinks to files included) in walk order, sorted
/// per folder, and the folders it could not read with the reason.
struct FileList {
    struct File {
        std::string path;
        std::uint64_t size = 0;
        std::int64_t mtime_ns = 0;  // last modification, nanoseconds since 1970 (stat's st_mtim)
    };
    std::vector<File> files;
    std::vector<std::pair<std::string, std::string>> unreadable;  // (folder, reason)
};

/// Walks each root recursively. Symlinks to folders are not followed (so a symlink loop
/// cannot trap the walk); symlinks to files are listed under their own path. A folder that
/// cannot be read is recorded in `unreadable` and skipped. A root that does not exist or is
/// not a folder throws IoError (nothing is walked then). Paths are made absolute and
/// lexically normal. `cancelled`, if given, is polled between folders.
inline FileList find_files(const std::vector<std::string>& roots, const std::atomic<bool>* cancelled = nullptr) {
    namespace fs = std::filesystem;
    FileList out;
    std::vector<fs::path> stack;
    for (const auto& r : roots) {
        std::error_code ec;
        const fs::path p = fs::absolute(fs::path(r), ec).lexically_normal();
        if (ec || !fs::exists(p, ec)) throw IoError(r + ": no such folder; check the path");
        if (!fs::is_directory(p, ec)) throw IoError(r + ": not a folder; give folders of images to index");
        fs::path q = p;
        if (q.has_filename() == false && q.has_parent_path() && q != q.root_path()) q = q.parent_path();  // "a/b/" -> "a/b"
        stack.push_back(q);
    }
    std::reverse(stack.begin(), stack.end());
    while (!stack.empty()) {
        if (cancelled && cancelled->load()) break;
        const fs::path dir = stack.back();
        stack.pop_back();
        std::error_code ec;
        fs::directory_iterator it(dir, ec), end;
        if (ec) {
            out.unreadable.emplace_back(dir.string(), ec.message());
            continue;
        }
        std::vector<fs::path> subdirs;
        std::vector<FileList::File> files;
        for (; it != end; it.increment(ec)) {
            if (ec) break;
            const fs::directory_entry& e = *it;
            std::error_code sec;
            const fs::file_status link = e.symlink_status(sec);
            if (sec) continue;
            if (fs::is_directory(link)) {
                subdirs.push_back(e.path());
                continue;
            }
            const fs::file_status st = fs::is_symlink(link) ? e.status(sec) : link;
            if (sec || !fs::is_regular_file(st)) continue;  // dangling links, folder links, devices, sockets
            FileList::File f;
            f.path = e.path().string();
            struct stat sb {};
            if (::stat(f.path.c_str(), &sb) != 0) continue;  // gone since it was listed
            f.size = static_cast<std::uint64_t>(sb.st_size);
            f.mtime_ns = static_cast<std::int64_t>(sb.st_mtim.tv_sec) * 1000000000 + sb.st_mtim.tv_nsec;
            files.push_back(std::move(f));
        }
        if (ec) out.unreadable.emplace_back(dir.string(), ec.message());
        std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
        std::sort(subdirs.begin(), subdirs.end());
        for (auto& f : files) out.files.push_back(std::move(f));
        for (auto s = subdirs.rbegin(); s != subdirs.rend(); ++s) stack.push_back(*s);
    }
    return out;
}

// ---------------------------------------------------------------------------------------
// Vectors

/// Scales `v` to unit L2 norm. Throws InvalidArgument for a zero (or non-finite) vector.
inline void normalize(std::vector<float>& v, const std::string& what = "embedding") {
    double s = 0;
    for (float x : v) s += double(x) * x;
    if (!(s > 0) || !std::isfinite(s)) {
        throw InvalidArgument(what + ": has no direction (zero or non-finite); it cannot be normalised");
    }
    const double norm = std::sqrt(s);
    for (float& x : v) x = static_cast<float>(x / norm);
}

/// A query from several embeddings (rows of `positive` and `negative`, each [n, dim],
/// normalised here row by row): mean of the positives minus mean of the negatives scaled
/// the same way (sum(pos)/n_pos - sum(neg)/n_pos), renormalised, as rclip's "a + b - c".
/// Throws InvalidArgument if there is no positive row, the sizes differ, or the result
/// has no direction (the negatives cancel the positives).
inline std::vector<float> combine_query(const Tensor& positive, const Tensor* negative = nullptr) {
    if (positive.shape.size() != 2 || positive.dim(0) == 0) {
        throw InvalidArgument("combine_query: give at least one text or image to search for");
    }
    const std::int64_t dim = positive.dim(1);
    std::vector<float> q(static_cast<std::size_t>(dim), 0.0f);
    auto add = [&](const Tensor& t, double sign) {
        for (std::int64_t r = 0; r < t.dim(0); ++r) {
            std::vector<float> row(t.slice(r), t.slice(r) + dim);
            normalize(row, "combine_query: row " + std::to_string(r));
            for (std::int64_t i = 0; i < dim; ++i) q[i] += static_cast<float>(sign * row[i]);
        }
    };
    add(positive, 1.0);
    if (negative && negative->numel() > 0) {
        if (negative->shape.size() != 2 || negative->dim(1) != dim) {
            throw InvalidArgument("combine_query: negative embeddings of " +
                                  std::to_string(negative->shape.size() == 2 ? negative->dim(1) : 0) +
                                  " values do not match the positive ones (" + std::to_string(dim) + ")");
        }
        add(*negative, -1.0);
    }
    for (float& x : q) x /= static_cast<float>(positive.dim(0));
    normalize(q, "combine_query: the query (the --not parts cancel the rest)");
    return q;
}

/// One search hit: row index into the scanned matrix and its dot product with the query.
struct Hit {
    std::size_t index = 0;
    float score = 0;
};

/// Dot products of each row of `matrix` ([rows, dim], row-major) with `query` into
/// out[0, rows). For a scan in pieces (a block of stored vectors at a time). The kernel is
/// chosen at run time for this CPU (capped like a model's by ALTCLIP_MAX_ISA, or by `cap`).
inline void score_rows(const float* matrix, std::size_t rows, std::size_t dim, const std::vector<float>& query,
                       float* out, Isa cap = Isa::best) {
    if (query.size() != dim) {
        throw InvalidArgument("score_rows: query of " + std::to_string(query.size()) + " values for vectors of " +
                              std::to_string(dim));
    }
    kernels::scan::dot_rows(matrix, rows, dim, query.data(), out, cpu_info().effective(cap));
}

/// score_rows for stored vectors of IEEE half floats (binary16 bits, as float_to_half
/// makes them): half the bytes to read for a scan; each score is within
/// half_dot_error(dim) of the float32 vector's.
inline void score_rows(const std::uint16_t* halves, std::size_t rows, std::size_t dim, const std::vector<float>& query,
                       float* out, Isa cap = Isa::best) {
    if (query.size() != dim) {
        throw InvalidArgument("score_rows: query of " + std::to_string(query.size()) + " values for vectors of " +
                              std::to_string(dim));
    }
    kernels::scan::dot_rows(halves, rows, dim, query.data(), out, cpu_info().effective(cap));
}

/// How far the dot product of a unit query with a unit vector can move when the vector is
/// stored as half floats: each value moves by at most 2^-11 of itself (or 2^-25 below
/// 2^-14), so the product by at most 2^-11 * sum |q_i v_i| + 2^-25 * sum |q_i|
/// <= 2^-11 + 2^-25 * sqrt(dim); plus the float32 sums' own rounding (at most dim * 2^-24
/// for unit vectors). A scan over half floats that keeps every row within twice this of
/// the k-th best score, and re-scores those from float32, gives the exact top k.
inline double half_dot_error(std::size_t dim) {
    return std::ldexp(1.0, -11) + std::ldexp(std::sqrt(double(dim)), -25) + std::ldexp(double(dim), -24);
}

/// The k largest of `scores`, best first (ties: lower index first). k = 0 throws InvalidArgument.
inline std::vector<Hit> top_k_scores(const std::vector<float>& scores, std::size_t k) {
    if (k == 0) throw InvalidArgument("top_k: k must be at least 1");
    k = std::min(k, scores.size());
    std::vector<std::size_t> idx(scores.size());
    for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    const auto& s = scores;
    auto better = [&](std::size_t a, std::size_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); };
    std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(), better);
    std::vector<Hit> hits(k);
    for (std::size_t i = 0; i < k; ++i) hits[i] = {idx[i], s[idx[i]]};
    return hits;
}

/// Exact search: the k rows of `matrix` ([rows, dim], row-major, unit rows) with the largest
/// dot product with `query`, best first (ties: lower index first). `scores`, if given, is
/// used as scratch of `rows` floats (reuse it across queries). k = 0 throws InvalidArgument.
inline std::vector<Hit> top_k(const float* matrix, std::size_t rows, std::size_t dim, const std::vector<float>& query,
                              std::size_t k, std::vector<float>* scores = nullptr) {
    if (k == 0) throw InvalidArgument("top_k: k must be at least 1");
    std::vector<float> local;
    std::vector<float>& s = scores ? *scores : local;
    s.resize(rows);
    score_rows(matrix, rows, dim, query, s.data());
    return top_k_scores(s, k);
}

// ---------------------------------------------------------------------------------------
// Thumbnails

/// `image` as the processor sees it (composited on white if it has alpha), shrunk to fit in
/// max_side x max_side by averaging boxes of pixels (never enlarged). Opaque RGB.
inline Image make_thumbnail(const Image& image, int max_side) {
    if (max_side < 1) throw InvalidArgument("make_thumbnail: max_side must be at least 1");
    detail::check_image_dimensions(image.width, image.height, "make_thumbnail: input image");
    const auto rgb = composite_on_white(image);
    const double s = std::min(1.0, static_cast<double>(max_side) / std::max(image.width, image.height));
    Image out;
    out.width = std::max(1, static_cast<int>(image.width * s + 0.5));
    out.height = std::max(1, static_cast<int>(image.height * s + 0.5));
    out.rgb.resize(static_cast<std::size_t>(out.width) * out.height * 3);
    for (int y = 0; y < out.height; ++y) {
        const int y0 = static_cast<int>(static_cast<std::int64_t>(y) * image.height / out.height);
        const int y1 = std::max(y0 + 1, static_cast<int>(static_cast<std::int64_t>(y + 1) * image.height / out.height));
        for (int x = 0; x < out.width; ++x) {
            const int x0 = static_cast<int>(static_cast<std::int64_t>(x) * image.width / out.width);
            const int x1 = std::max(x0 + 1, static_cast<int>(static_cast<std::int64_t>(x + 1) * image.width / out.width));
            std::uint64_t sum[3] = {0, 0, 0};
            for (int yy = y0; yy < y1; ++yy) {
                const std::uint8_t* row = rgb.data() + (static_cast<std::size_t>(yy) * image.width + x0) * 3;
                for (int xx = x0; xx < x1; ++xx, row += 3) {
                    sum[0] += row[0];
                    sum[1] += row[1];
                    sum[2] += row[2];
                }
            }
            const auto area = static_cast<std::uint64_t>(y1 - y0) * static_cast<std::uint64_t>(x1 - x0);
            for (int c = 0; c < 3; ++c) {
                out.rgb[(static_cast<std::size_t>(y) * out.width + x) * 3 + c] = static_cast<std::uint8_t>((sum[c] + area / 2) / area);
            }
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------
// Batched image embedding

/// The result for one input file of ImageEmbedder::embed_files.
struct ImageEmbedding {
    std::size_t index = 0;        // position in the input list
    std::string path;
    bool ok = false;
    std::string error;            // why it failed (when !ok): the library's message
    std::uint64_t size = 0;       // bytes read
    std::uint64_t content_hash = 0;  // content_hash64 of those bytes
    std::vector<float> embedding;  // get_image_features, L2-normalised (when ok)
    Image thumbnail;               // make_thumbnail (when ok and EmbedOptions::thumbnail_side > 0)
};

struct EmbedOptions {
    /// Images per model call.
    int batch_size = 8;
    /// Batches decoded ahead of the model (bounded memory: batch_size * 600 kB per batch).
    int prefetch_batches = 2;
    /// > 0: each result also carries a thumbnail of at most this many pixels a side, made
    /// from the decoded image on the decoding thread (the file is decoded once).
    int thumbnail_side = 0;
};

/// Embeds image files with a shared model. While the model runs a batch, another thread
/// reads, hashes, decodes and preprocesses the next ones. Immutable; embed_files may be
/// called from several threads at once.
class ImageEmbedder {
public:
    using BatchCallback = std::function<bool(std::vector<ImageEmbedding>&)>;

    ImageEmbedder(const AltCLIPModel& model, const CLIPImageProcessor& processor, EmbedOptions options = {})
        : model_(model), processor_(processor), options_(options) {
        if (options_.batch_size < 1 || options_.batch_size > 4096) {
            throw InvalidArgument("ImageEmbedder: batch_size " + std::to_string(options_.batch_size) +
                                  " is out of range; use 1 to 4096");
        }
        if (options_.prefetch_batches < 1) options_.prefetch_batches = 1;
        if (!processor_.config().do_center_crop) {
            throw ConfigError("ImageEmbedder: the image processor does not center-crop, so images of different "
                              "sizes cannot share a batch; set do_center_crop in the preprocessor config");
        }
    }

    /// Embeds `paths` in order, batch by batch. After each batch, `on_batch` gets its results
    /// (one per file of the batch, failures included, in input order) on the calling thread;
    /// it returns false to stop early (the batches after it are not computed). Exceptions
    /// from `on_batch` or the model stop the work and are rethrown here.
    void embed_files(const std::vector<std::string>& paths, const BatchCallback& on_batch) const {
        struct Prepared {
            std::vector<ImageEmbedding> items;
            std::vector<std::size_t> decoded;  // positions in items that have pixels
            PixelValues pixels;
        };
        std::mutex m;
        std::condition_variable cv;
        std::deque<Prepared> ready;
        bool done = false, stop = false;
        std::exception_ptr producer_error;
        const std::size_t bs = static_cast<std::size_t>(options_.batch_size);

        std::thread producer([&] {
            try {
                for (std::size_t start = 0; start < paths.size(); start += bs) {
                    Prepared p;
                    for (std::size_t i = start; i < std::min(paths.size(), start + bs); ++i) {
                        {
                            std::lock_guard<std::mutex> lock(m);
                            if (stop) break;
                        }
                        ImageEmbedding e;
                        e.index = i;
                        e.path = paths[i];
                        std::vector<float> one;
                        try {
                            const auto bytes = read_file_bytes(paths[i]);
                            e.size = bytes.size();
                            e.content_hash = content_hash64(bytes.data(), bytes.size());
                            const Image image = decode_image(bytes.data(), bytes.size(), paths[i]);
                            one = processor_.preprocess(image);
                            if (options_.thumbnail_side > 0) e.thumbnail = make_thumbnail(image, options_.thumbnail_side);
                            e.ok = true;
                        } catch (const Error& err) {
                            e.error = err.what();
                        }
                        if (e.ok) {
                            p.decoded.push_back(p.items.size());
                            p.pixels.data.insert(p.pixels.data.end(), one.begin(), one.end());
                        }
                        p.items.push_back(std::move(e));
                    }
                    const auto& c = processor_.config();
                    p.pixels.batch = static_cast<std::int64_t>(p.decoded.size());
                    p.pixels.channels = 3;
                    p.pixels.height = c.crop_height;
                    p.pixels.width = c.crop_width;
                    std::unique_lock<std::mutex> lock(m);
                    cv.wait(lock, [&] { return stop || ready.size() < static_cast<std::size_t>(options_.prefetch_batches); });
                    if (stop) break;
                    ready.push_back(std::move(p));
                    cv.notify_all();
                }
            } catch (...) {
                std::lock_guard<std::mutex> lock(m);
                producer_error = std::current_exception();
            }
            std::lock_guard<std::mutex> lock(m);
            done = true;
            cv.notify_all();
        });

        auto finish = [&] {
            {
                std::lock_guard<std::mutex> lock(m);
                stop = true;
            }
            cv.notify_all();
            producer.join();
        };
        try {
            for (;;) {
                Prepared p;
                {
                    std::unique_lock<std::mutex> lock(m);
                    cv.wait(lock, [&] { return !ready.empty() || done; });
                    if (ready.empty()) break;
                    p = std::move(ready.front());
                    ready.pop_front();
                    cv.notify_all();
                }
                if (p.pixels.batch > 0) {
                    Tensor feats = model_.get_image_features(p.pixels);
                    l2_normalize_rows(feats);
                    const auto dim = feats.dim(1);
                    for (std::size_t j = 0; j < p.decoded.size(); ++j) {
                        auto& e = p.items[p.decoded[j]];
                        e.embedding.assign(feats.slice(static_cast<std::int64_t>(j)),
                                           feats.slice(static_cast<std::int64_t>(j)) + dim);
                    }
                }
                if (!on_batch(p.items)) break;
            }
        } catch (...) {
            finish();
            throw;
        }
        finish();
        if (producer_error) std::rethrow_exception(producer_error);
    }

private:
    const AltCLIPModel& model_;
    const CLIPImageProcessor& processor_;
    EmbedOptions options_;
};

}  // namespace altclip
