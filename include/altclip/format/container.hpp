// The altclip container (docs/format.md): a validated, memory-mapped file of named
// tensors and blobs with a JSON header (read by format/json.hpp). Model files and test reference files both use it;
// model-specific checks (tensor names and shapes implied by the config) live in model_file.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../errors.hpp"
#include "../tensor.hpp"
#include "json.hpp"
#include "layout.hpp"
#include "mapped_file.hpp"

namespace altclip {

namespace format {
inline constexpr unsigned char kMagic[8] = {'A', 'L', 'T', 'C', 'L', 'I', 'P', 0};
/// Version written (3: the layout "panels64"); 2 ("panels" of 32 rows) and 1 (no "layout"
/// field: every tensor row-major) are still read.
inline constexpr std::uint32_t kVersion = 3;
inline constexpr std::uint32_t kOldestVersion = 1;
inline constexpr std::size_t kPreamble = 24;
inline constexpr std::size_t kAlign = 64;
/// Largest header accepted; the real model's is under 100 kB.
inline constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
inline constexpr std::size_t kMaxRank = 8;
}  // namespace format

namespace detail {

inline bool mul_overflow(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
    return __builtin_mul_overflow(a, b, &out);
}
inline bool add_overflow(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
    return __builtin_add_overflow(a, b, &out);
}
inline std::uint32_t read_u32le(const unsigned char* p) {
    return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 |
           std::uint32_t(p[3]) << 24;
}
inline std::uint64_t read_u64le(const unsigned char* p) {
    return std::uint64_t(read_u32le(p)) | std::uint64_t(read_u32le(p + 4)) << 32;
}

}  // namespace detail

/// A blob (opaque bytes, e.g. the SentencePiece model) inside a container.
struct BlobView {
    std::string name;
    const unsigned char* data = nullptr;
    std::size_t size = 0;
    std::string_view bytes() const { return {reinterpret_cast<const char*>(data), size}; }
};

/// Opens and fully validates a container before anything is read from it.
/// Immutable after construction; safe to share between threads.
class Container {
public:
    /// Maps `path` (no copy of the data) and validates it. Throws IoError or FormatError.
    explicit Container(const std::string& path) {
        auto file = std::make_shared<detail::MappedFile>(path);
        name_ = path;
        data_ = file->data();
        size_ = file->size();
        keep_alive_ = std::move(file);
        parse();
    }

    /// Validates a container held in memory (copied); `name` is used in messages.
    static Container from_bytes(std::string_view bytes, const std::string& name) {
        return Container(bytes, name);
    }

    const std::string& path() const { return name_; }
    const json::Value& header() const { return header_; }
    std::size_t file_size() const { return size_; }

    bool has_tensor(const std::string& name) const { return tensors_.count(name) != 0; }
    bool has_blob(const std::string& name) const { return blobs_.count(name) != 0; }

    /// The tensor `name`; throws FormatError naming the file if it is not there.
    const TensorView& tensor(const std::string& name) const {
        auto it = tensors_.find(name);
        if (it == tensors_.end()) {
            throw FormatError(name_ + ": no tensor named '" + name +
                              "'. The file may be from another model or converter version; "
                              "re-run tools/convert.py.");
        }
        return it->second;
    }
    const std::map<std::string, TensorView>& tensors() const { return tensors_; }

    const BlobView& blob(const std::string& name) const {
        auto it = blobs_.find(name);
        if (it == blobs_.end()) {
            throw FormatError(name_ + ": no blob named '" + name + "'. Re-run tools/convert.py.");
        }
        return it->second;
    }

private:
    Container(std::string_view bytes, const std::string& name) {
        auto buf = std::make_shared<std::vector<unsigned char>>(bytes.begin(), bytes.end());
        // A vector's storage is at least 16-byte aligned; copy into 64-aligned storage
        // so the alignment rule of the format means the same as for a mapped file.
        auto aligned = std::shared_ptr<unsigned char>(
            static_cast<unsigned char*>(::operator new[](bytes.size() + 1, std::align_val_t(64))),
            [](unsigned char* p) { ::operator delete[](p, std::align_val_t(64)); });
        if (!bytes.empty()) std::memcpy(aligned.get(), bytes.data(), bytes.size());
        name_ = name;
        data_ = aligned.get();
        size_ = bytes.size();
        keep_alive_ = aligned;
        parse();
    }

    [[noreturn]] void fail(const std::string& msg) const {
        throw FormatError(name_ + ": " + msg);
    }

    std::uint64_t get_u64(const json::Value& item, const char* key, const std::string& what) const {
        const json::Value* v = item.find(key);
        if (!v || !v->is_unsigned()) {
            fail(what + ": '" + key + "' is missing or not a non-negative integer. The file is "
                 "corrupt; re-run tools/convert.py.");
        }
        return v->as_uint64();
    }

    void parse() {
        using namespace format;
        const std::string hint = " The file is corrupt or truncated; re-run tools/convert.py.";
        if (size_ < kPreamble) {
            fail("file is " + std::to_string(size_) + " bytes, shorter than the " +
                 std::to_string(kPreamble) + "-byte preamble of an altclip file." + hint);
        }
        if (std::memcmp(data_, kMagic, 8) != 0) {
            fail("not an altclip model file (bad magic; expected \"ALTCLIP\\0\"). Convert a "
                 "checkpoint with tools/convert.py first.");
        }
        const std::uint32_t version = detail::read_u32le(data_ + 8);
        if (version < kOldestVersion || version > kVersion) {
            fail("format version " + std::to_string(version) + ", this library reads versions " +
                 std::to_string(kOldestVersion) + " to " + std::to_string(kVersion) +
                 ". Re-convert with the tools/convert.py of this release.");
        }
        const std::uint64_t header_size = detail::read_u64le(data_ + 16);
        if (header_size > kMaxHeaderBytes) {
            fail("header size " + std::to_string(header_size) + " exceeds the limit of " +
                 std::to_string(kMaxHeaderBytes) + " bytes." + hint);
        }
        if (header_size > size_ - kPreamble) {
            fail("header of " + std::to_string(header_size) + " bytes runs past the end of the file (" +
                 std::to_string(size_) + " bytes)." + hint);
        }
        const char* hp = reinterpret_cast<const char*>(data_ + kPreamble);
        try {
            header_ = json::parse(hp, hp + header_size);
        } catch (const FormatError& e) {  // "JSON: byte N: what"
            std::string why = e.what();
            if (why.rfind("JSON: ", 0) == 0) why.erase(0, 6);
            fail("header is not valid JSON (" + why + ")." + hint);
        }
        if (!header_.is_object()) fail("header is not a JSON object." + hint);
        const json::Value* fmt = header_.find("format");
        if (!fmt || !fmt->is_string() || fmt->as_string() != "altclip") {
            fail("header lacks \"format\": \"altclip\"." + hint);
        }
        const std::uint64_t data_start = (kPreamble + header_size + kAlign - 1) / kAlign * kAlign;
        if (data_start > size_) {
            fail("data section would start at byte " + std::to_string(data_start) +
                 ", past the end of the file (" + std::to_string(size_) + " bytes)." + hint);
        }
        const std::uint64_t data_len = size_ - data_start;

        struct Span { std::uint64_t begin, end; std::string name; };
        std::vector<Span> spans;
        auto place = [&](const json::Value& item, const std::string& what, std::uint64_t nbytes_expected,
                         bool check_size) -> std::pair<std::uint64_t, std::uint64_t> {
            const std::uint64_t off = get_u64(item, "offset", what);
            const std::uint64_t sz = get_u64(item, "size", what);
            if (check_size && sz != nbytes_expected) {
                fail(what + ": size is " + std::to_string(sz) + " bytes, its shape and dtype need " +
                     std::to_string(nbytes_expected) + "." + hint);
            }
            if (off % kAlign != 0) {
                fail(what + ": offset " + std::to_string(off) + " is not aligned to " +
                     std::to_string(kAlign) + " bytes." + hint);
            }
            std::uint64_t end;
            if (detail::add_overflow(off, sz, end) || end > data_len) {
                fail(what + ": bytes [" + std::to_string(off) + ", " + std::to_string(off) + " + " +
                     std::to_string(sz) + ") lie outside the data section of " +
                     std::to_string(data_len) + " bytes." + hint);
            }
            spans.push_back({off, end, what});
            return {off, sz};
        };

        if (const json::Value* b = header_.find("blobs")) {
            if (!b->is_object()) fail("\"blobs\" is not an object." + hint);
            for (const auto& [key, item] : b->members()) {
                const std::string what = "blob '" + key + "'";
                if (!item.is_object()) fail(what + " is not an object." + hint);
                auto [off, sz] = place(item, what, 0, false);
                blobs_[key] = BlobView{key, data_ + data_start + off, static_cast<std::size_t>(sz)};
            }
        }
        const json::Value* t = header_.find("tensors");
        if (!t || !t->is_object()) fail("header has no \"tensors\" object." + hint);
        for (const auto& [key, item] : t->members()) {
            const std::string what = "tensor '" + key + "'";
            if (!item.is_object()) fail(what + " is not an object." + hint);
            TensorView v;
            v.name = key;
            const json::Value* dt = item.find("dtype");
            if (!dt || !dt->is_string() || !parse_dtype(dt->as_string(), v.dtype)) {
                fail(what + ": missing or unknown dtype (known: f32, f16, bf16, i64, i32, u8, i8)." + hint);
            }
            const json::Value* sh = item.find("shape");
            if (!sh || !sh->is_array() || sh->size() > kMaxRank) {
                fail(what + ": shape missing, not an array, or of rank above " + std::to_string(kMaxRank) + "." + hint);
            }
            std::uint64_t count = 1;
            for (const json::Value& d : sh->elements()) {
                if (!d.is_unsigned()) fail(what + ": a dimension is not a non-negative integer." + hint);
                const std::uint64_t dim = d.as_uint64();
                if (dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
                    detail::mul_overflow(count, dim, count)) {
                    fail(what + ": the product of its dimensions overflows 64 bits." + hint);
                }
                v.shape.push_back(static_cast<std::int64_t>(dim));
            }
            std::uint64_t nbytes;
            if (detail::mul_overflow(count, dtype_size(v.dtype), nbytes)) {
                fail(what + ": its byte size overflows 64 bits." + hint);
            }
            if (const json::Value* lay = item.find("layout")) {
                if (!lay->is_string() || (panel_layout::rows_of(lay->as_string()) == 0 && lay->as_string() != "rows")) {
                    fail(what + ": unknown layout (known: rows, panels64, panels)." + hint);
                }
                v.panel_rows = panel_layout::rows_of(lay->as_string());
                v.panels = v.panel_rows != 0;
            }
            if (v.panels) {  // format/layout.hpp
                if (!panel_layout::allowed(v.dtype) || v.shape.size() < 2) {
                    fail(what + ": the panel layout is for f32 and bf16 matrices (rank 2 or more), not " +
                         dtype_name(v.dtype) + " of rank " + std::to_string(v.shape.size()) + "." + hint);
                }
                std::uint64_t cols = 1;  // a factor of count, but count is 0 when shape[0] is
                for (std::size_t i = 1; i < v.shape.size(); ++i) {
                    if (detail::mul_overflow(cols, static_cast<std::uint64_t>(v.shape[i]), cols)) {
                        fail(what + ": the product of its dimensions overflows 64 bits." + hint);
                    }
                }
                const std::uint64_t g = static_cast<std::uint64_t>(panel_layout::group(v.dtype));
                const std::uint64_t units = cols / g + (cols % g != 0);
                const auto blocks = static_cast<std::uint64_t>(panel_layout::row_blocks(v.shape[0], v.panel_rows));
                if (detail::mul_overflow(blocks, units, nbytes) ||
                    detail::mul_overflow(nbytes, static_cast<std::uint64_t>(v.panel_rows) * 4, nbytes)) {
                    fail(what + ": its byte size overflows 64 bits." + hint);
                }
            }
            auto [off, sz] = place(item, what, nbytes, true);
            v.data = data_ + data_start + off;
            v.nbytes = static_cast<std::size_t>(sz);
            tensors_[v.name] = std::move(v);
        }

        std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
            return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
        });
        std::uint64_t end = 0;
        for (std::size_t i = 0; i < spans.size(); ++i) {
            if (i > 0 && spans[i].begin < spans[i - 1].end) {
                fail(spans[i - 1].name + " and " + spans[i].name + " overlap (bytes " +
                     std::to_string(spans[i].begin) + " to " + std::to_string(spans[i - 1].end) + ")." + hint);
            }
            end = std::max(end, spans[i].end);
        }
        if (end != data_len) {
            fail("the data section is " + std::to_string(data_len) + " bytes but its items end at byte " +
                 std::to_string(end) + (end < data_len ? " (trailing bytes)." : ".") + hint);
        }
    }

    std::string name_;
    const unsigned char* data_ = nullptr;
    std::size_t size_ = 0;
    std::shared_ptr<const void> keep_alive_;
    json::Value header_;
    std::map<std::string, TensorView> tensors_;
    std::map<std::string, BlobView> blobs_;
};

}  // namespace altclip
