// altclip: the XLM-RoBERTa tokenizer AltCLIP uses, on libsentencepiece.
//
// Mirrors what `AltCLIPProcessor.from_pretrained(folder).tokenizer` gives in transformers 5.x:
// `transformers/models/xlm_roberta/tokenization_xlm_roberta.py` `XLMRobertaTokenizer`, a
// `tokenizers`-backed Unigram model converted from `sentencepiece.bpe.model`
// (`convert_slow_tokenizer.py` `XLMRobertaConverter`). Its pipeline is:
//   added tokens (<s> <pad> </s> <unk> <mask>, matched in the raw text)
//   -> normalizers.Precompiled(the model's charsmap)
//   -> pre_tokenizers.WhitespaceSplit + Metaspace("▁", prepend_scheme="always")
//   -> Unigram(unk_id=3) -> TemplateProcessing "<s> $A </s>".
// Here: added tokens are split off first; libsentencepiece normalises each segment (its
// charsmap, whitespace collapsing, dummy prefix, ▁), with U+0085 turned into a space first;
// the normalised text is cut into words at each ▁ and every word goes through the reference's
// Unigram best path (in double, with its tie rule) over the spm pieces and scores.
// docs/tokenizer.md lists what still differs and why.
#pragma once

#include <sentencepiece_processor.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../errors.hpp"
#include "../format/read_file.hpp"
#include "../inputs.hpp"  // BatchEncoding
#include "../limits.hpp"

namespace altclip {

namespace detail {

/// Outcome of checking a byte string for UTF-8 validity (RFC 3629: no overlong forms,
/// no surrogates, nothing above U+10FFFF).
struct Utf8Check {
    bool ok = true;
    std::size_t offset = 0;  // first bad byte
    const char* why = "";
};

inline Utf8Check check_utf8(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t n = s.size();
    std::size_t i = 0;
    while (i < n) {
        const unsigned char c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len = 0;
        std::uint32_t cp = 0;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1Fu;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0Fu;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07u;
        } else if (c >= 0x80 && c <= 0xBF) {
            return {false, i, "unexpected continuation byte"};
        } else if (c == 0xC0 || c == 0xC1) {
            return {false, i, "overlong encoding"};
        } else {
            return {false, i, "byte that never appears in UTF-8"};
        }
        for (std::size_t k = 1; k < len; ++k) {
            if (i + k >= n) return {false, i, "truncated multi-byte sequence"};
            const unsigned char cc = p[i + k];
            if ((cc & 0xC0u) != 0x80u) return {false, i, "truncated multi-byte sequence"};
            cp = (cp << 6) | (cc & 0x3Fu);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) {
            return {false, i, "overlong encoding"};
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) return {false, i, "UTF-16 surrogate (U+D800..U+DFFF)"};
        if (cp > 0x10FFFF) return {false, i, "code point above U+10FFFF"};
        i += len;
    }
    return {};
}

/// Short printable excerpt of a (possibly invalid) text: ASCII as is, other bytes as \xNN.
inline std::string escaped_excerpt(std::string_view s, std::size_t max_bytes = 40) {
    std::string out;
    const std::size_t n = std::min(s.size(), max_bytes);
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7F && c != '\\' && c != '"') {
            out += static_cast<char>(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned>(c));
            out += buf;
        }
    }
    if (s.size() > max_bytes) out += "...";
    return out;
}

/// The `piece` strings of a serialized sentencepiece.SentencePieceText (sentencepiece.proto:
/// field 2 `pieces`, in it field 1 `piece`). Their concatenation is spm's normalised text
/// (unknown spans carry their normalised text too). Minimal protobuf wire-format reader.
inline bool spm_text_pieces(std::string_view msg, std::vector<std::string_view>& out) {
    struct Reader {
        std::string_view s;
        std::size_t i = 0;
        bool varint(std::uint64_t& v) {
            v = 0;
            for (int shift = 0; shift < 64; shift += 7) {
                if (i >= s.size()) return false;
                const auto b = static_cast<unsigned char>(s[i++]);
                v |= static_cast<std::uint64_t>(b & 0x7Fu) << shift;
                if (!(b & 0x80u)) return true;
            }
            return false;
        }
        // Reads one field; for length-delimited ones `bytes` is the payload.
        bool field(std::uint64_t& number, std::string_view& bytes) {
            std::uint64_t key = 0, v = 0;
            if (!varint(key)) return false;
            number = key >> 3;
            bytes = {};
            switch (key & 7u) {
                case 0: return varint(v);
                case 1: if (s.size() - i < 8) return false; i += 8; return true;
                case 5: if (s.size() - i < 4) return false; i += 4; return true;
                case 2:
                    if (!varint(v) || v > s.size() - i) return false;
                    bytes = s.substr(i, static_cast<std::size_t>(v));
                    i += static_cast<std::size_t>(v);
                    return true;
                default: return false;
            }
        }
    };
    Reader top{msg};
    while (top.i < msg.size()) {
        std::uint64_t number = 0;
        std::string_view bytes;
        if (!top.field(number, bytes)) return false;
        if (number != 2) continue;
        Reader piece{bytes};
        while (piece.i < bytes.size()) {
            std::uint64_t n = 0;
            std::string_view b;
            if (!piece.field(n, b)) return false;
            if (n == 1) out.push_back(b);
        }
    }
    return true;
}

inline std::size_t utf8_len(unsigned char lead) {
    return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

}  // namespace detail

/// Mirrors transformers `XLMRobertaTokenizer` (tokenizers backend) as loaded by
/// `AltCLIPProcessor.from_pretrained`. Immutable after construction; const methods are safe
/// to call from several threads at once (SentencePieceProcessor::Encode is const and keeps
/// no state between calls). Copies share the loaded model.
class XLMRobertaTokenizer {
public:
    // fairseq ids (tokenization_xlm_roberta.py / XLMRobertaConverter.vocab).
    static constexpr std::int64_t kBosId = 0;  // <s>
    static constexpr std::int64_t kPadId = 1;  // <pad>
    static constexpr std::int64_t kEosId = 2;  // </s>
    static constexpr std::int64_t kUnkId = 3;  // <unk>

    /// Loads a SentencePiece model (the bytes of `sentencepiece.bpe.model`).
    /// model_max_length: the text config's max_position_embeddings - 2 (512 for XLM-R).
    explicit XLMRobertaTokenizer(std::string_view spm_model_bytes,
                                 std::int64_t model_max_length = 512)
        : max_len_(model_max_length) {
        if (model_max_length < 2) {
            throw InvalidArgument("XLMRobertaTokenizer: model_max_length must be >= 2 (room for <s> "
                                  "and </s>), got " + std::to_string(model_max_length) +
                                  "; pass the text config's max_position_embeddings - 2");
        }
        auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
        std::string error;
        try {
            const auto status = sp->LoadFromSerializedProto(
                absl::string_view(spm_model_bytes.data(), spm_model_bytes.size()));
            if (!status.ok()) error = status.ToString();
        } catch (const std::exception& e) {
            // libsentencepiece's trie builder (darts_clone) throws its own exception type for
            // some malformed models, e.g. a zero-length piece (found by fuzz/fuzz_model_file).
            error = e.what();
        }
        if (!error.empty()) {
            throw FormatError("XLMRobertaTokenizer: the SentencePiece model (" +
                              std::to_string(spm_model_bytes.size()) +
                              " bytes) could not be parsed: " + error +
                              "; pass the bytes of the model's sentencepiece.bpe.model "
                              "(re-run tools/convert.py if it came from a converted model)");
        }
        // The fairseq mapping below assumes XLM-R's layout: spm 0 <unk>, 1 <s>, 2 </s>.
        if (sp->GetPieceSize() < 4 || !sp->IsUnknown(0) || sp->IdToPiece(1) != "<s>" ||
            sp->IdToPiece(2) != "</s>" || !sp->IsControl(1) || !sp->IsControl(2)) {
            throw FormatError("XLMRobertaTokenizer: the SentencePiece model does not have XLM-R's "
                              "special pieces (expected ids 0 <unk>, 1 <s>, 2 </s>); this is not an "
                              "XLM-RoBERTa sentencepiece.bpe.model");
        }
        spm_size_ = sp->GetPieceSize();
        // The reference's Unigram vocabulary (XLMRobertaConverter.vocab): the four fairseq
        // specials and <mask> with score 0, every spm piece from id 3 on with its float score.
        auto vocab = std::make_shared<Vocab>();
        auto add = [&](std::string piece, std::int64_t id, double score) {
            vocab->max_piece_bytes = std::max(vocab->max_piece_bytes, piece.size());
            vocab->pieces.emplace(std::move(piece), std::make_pair(id, score));
        };
        add("<s>", kBosId, 0.0);
        add("<pad>", kPadId, 0.0);
        add("</s>", kEosId, 0.0);
        add("<unk>", kUnkId, 0.0);
        double min_score = 0.0;
        for (int id = 3; id < spm_size_; ++id) {
            const double score = static_cast<double>(sp->GetScore(id));
            min_score = std::min(min_score, score);
            add(sp->IdToPiece(id), id + 1, score);
        }
        add("<mask>", mask_token_id(), 0.0);
        // tokenizers unigram/model.rs: unk_score = min_score - K_UNK_PENALTY (10).
        vocab->unk_score = min_score - 10.0;
        vocab_ = std::move(vocab);
        sp_ = std::move(sp);
    }

    /// Reads the model file at `path` (e.g. a hub folder's sentencepiece.bpe.model).
    static XLMRobertaTokenizer from_file(const std::string& path,
                                         std::int64_t model_max_length = 512) {
        // XLM-R's sentencepiece.bpe.model is 5 MB; 1 GiB bounds what a wrong path can cost.
        const std::string bytes = detail::read_regular_file(
            path, std::size_t(1) << 30, "SentencePiece model",
            "XLMRobertaTokenizer::from_file takes the path of a sentencepiece.bpe.model file.");
        try {
            return XLMRobertaTokenizer(bytes, model_max_length);
        } catch (const FormatError& e) {
            throw FormatError(std::string(e.what()) + " [file: " + path + "]");
        }
    }

    std::int64_t pad_token_id() const { return kPadId; }
    std::int64_t bos_token_id() const { return kBosId; }
    std::int64_t eos_token_id() const { return kEosId; }
    std::int64_t unk_token_id() const { return kUnkId; }
    /// <mask> = spm size + 1 (XLMRobertaConverter appends it after the spm pieces).
    std::int64_t mask_token_id() const { return spm_size_ + 1; }
    /// len(tokenizer): 4 fairseq specials + (spm size - 3) pieces + <mask>.
    std::int64_t vocab_size() const { return spm_size_ + 2; }
    std::int64_t model_max_length() const { return max_len_; }

    /// `tokenizer(text, truncation=True)["input_ids"]`: [<s>] + ids + [</s>], at most
    /// model_max_length ids (the text's ids are cut from the right; <s> and </s> stay).
    std::vector<std::int64_t> encode(std::string_view text) const { return encode_checked(text, -1); }

    /// `tokenizer(texts, padding=True, truncation=True)`: right-padded to the longest row.
    BatchEncoding operator()(const std::vector<std::string>& texts) const try {
        if (texts.empty()) {
            throw InvalidArgument("XLMRobertaTokenizer: empty batch; pass at least one text "
                                  "(an empty string \"\" is a valid text)");
        }
        if (texts.size() > static_cast<std::size_t>(kMaxBatchSize)) {
            throw InvalidArgument("XLMRobertaTokenizer: batch of " + std::to_string(texts.size()) +
                                  " texts exceeds the limit of " + std::to_string(kMaxBatchSize) +
                                  " (kMaxBatchSize); split it into several calls");
        }
        std::vector<std::vector<std::int64_t>> rows;
        rows.reserve(texts.size());
        std::size_t longest = 0;
        for (std::size_t i = 0; i < texts.size(); ++i) {
            rows.push_back(encode_checked(texts[i], static_cast<std::int64_t>(i)));
            longest = std::max(longest, rows.back().size());
        }
        BatchEncoding out;
        out.batch = static_cast<std::int64_t>(texts.size());
        out.seq_len = static_cast<std::int64_t>(longest);
        out.input_ids.assign(texts.size() * longest, kPadId);
        out.attention_mask.assign(texts.size() * longest, 0);
        out.lengths.resize(texts.size());
        for (std::size_t i = 0; i < rows.size(); ++i) {
            std::copy(rows[i].begin(), rows[i].end(), out.input_ids.begin() + i * longest);
            std::fill_n(out.attention_mask.begin() + i * longest, rows[i].size(), 1);
            out.lengths[i] = static_cast<std::int64_t>(rows[i].size());
        }
        return out;
    } catch (const std::bad_alloc&) {
        throw detail::out_of_memory("XLMRobertaTokenizer", "a batch of " + std::to_string(texts.size()) + " texts");
    }

private:
    // batch_index < 0: a single text (encode()).
    std::vector<std::int64_t> encode_checked(std::string_view text, std::int64_t batch_index) const {
        if (text.size() > kMaxTextBytes) {
            throw TextError("XLMRobertaTokenizer: " +
                            (batch_index < 0 ? std::string("text") : "text " + std::to_string(batch_index) + " of the batch") +
                            " is " + std::to_string(text.size()) + " bytes, above the limit of " +
                            std::to_string(kMaxTextBytes) + " bytes (kMaxTextBytes); the model reads at most " +
                            std::to_string(max_len_) + " tokens, so cut the text first");
        }
        const auto check = detail::check_utf8(text);
        if (!check.ok) {
            char byte[8];
            std::snprintf(byte, sizeof byte, "0x%02X",
                          static_cast<unsigned>(static_cast<unsigned char>(text[check.offset])));
            const std::string which =
                batch_index < 0 ? std::string("text") : "text " + std::to_string(batch_index) + " of the batch";
            const std::size_t from = check.offset > 16 ? check.offset - 16 : 0;
            throw TextError("XLMRobertaTokenizer: " + which + " is not valid UTF-8 (" + check.why +
                            ", byte " + byte + " at offset " + std::to_string(check.offset) +
                            ", near \"" + (from > 0 ? "..." : "") +
                            detail::escaped_excerpt(text.substr(from), 40) +
                            "\"); decode the text from its original encoding to UTF-8 first");
        }
        std::vector<std::int64_t> ids;
        ids.push_back(kBosId);
        encode_body(text, ids);
        // Truncation (truncation=True, max_length=None -> model_max_length): keep room for </s>.
        const auto limit = static_cast<std::size_t>(max_len_ - 1);
        if (ids.size() > limit) ids.resize(limit);
        ids.push_back(kEosId);
        return ids;
    }

    // The added tokens of the reference, matched in the raw text before normalisation
    // (tokenizers AddedVocabulary: leftmost-longest match, `normalized: False`, no strip).
    // The text between them is tokenized on its own, exactly as the reference does.
    void encode_body(std::string_view text, std::vector<std::int64_t>& out) const {
        const std::array<std::pair<std::string_view, std::int64_t>, 5> added = {{
            {"<s>", kBosId}, {"<pad>", kPadId}, {"</s>", kEosId}, {"<unk>", kUnkId},
            {"<mask>", mask_token_id()}}};
        std::size_t start = 0;
        std::size_t pos = 0;
        while (pos < text.size()) {
            if (text[pos] == '<') {
                std::size_t best_len = 0;
                std::int64_t best_id = 0;
                for (const auto& [tok, id] : added) {
                    if (text.substr(pos, tok.size()) == tok && tok.size() > best_len) {
                        best_len = tok.size();
                        best_id = id;
                    }
                }
                if (best_len > 0) {
                    encode_segment(text.substr(start, pos - start), out);
                    out.push_back(best_id);
                    pos += best_len;
                    start = pos;
                    continue;
                }
            }
            ++pos;
        }
        encode_segment(text.substr(start), out);
    }

    // One segment: SentencePiece (charsmap normalisation, whitespace handling, Unigram) after
    // the pre-processing that makes it split words where the reference's WhitespaceSplit does.
    void encode_segment(std::string_view segment, std::vector<std::int64_t>& out) const {
        if (segment.empty()) return;
        // U+0085 NEXT LINE: the nmt_nfkc charsmap leaves it alone, so spm sees an unknown
        // character, but WhitespaceSplit (Rust char::is_whitespace) splits on it. It is the only
        // code point where the two disagree; a space gives the reference's split.
        std::string buf;
        std::string_view input = segment;
        if (segment.find("\xC2\x85") != std::string_view::npos) {
            buf.assign(segment.data(), segment.size());
            for (std::size_t p = 0; (p = buf.find("\xC2\x85", p)) != std::string::npos;) {
                buf.replace(p, 2, "  ");
            }
            input = buf;
        }
        // spm normalises (charsmap, whitespace collapsing, dummy prefix, ▁ escaping); its
        // pieces spell out the normalised text, which matches the reference's
        // Precompiled + WhitespaceSplit + Metaspace output (docs/tokenizer.md lists where not).
        const std::string proto =
            sp_->EncodeAsSerializedProto(absl::string_view(input.data(), input.size()));
        std::vector<std::string_view> pieces;
        if (!detail::spm_text_pieces(proto, pieces)) {
            throw TextError("XLMRobertaTokenizer: SentencePiece could not encode \"" +
                            detail::escaped_excerpt(segment) + "\"");
        }
        std::string normalized;
        for (const auto p : pieces) normalized += p;
        // Metaspace(split=True): a word starts at every ▁ (U+2581, E2 96 81). The reference
        // runs the Unigram model on each word alone.
        static constexpr std::string_view kMeta = "\xE2\x96\x81";
        std::size_t begin = 0;
        while (begin < normalized.size()) {
            std::size_t next = normalized.find(kMeta, begin + 1);
            if (next == std::string::npos) next = normalized.size();
            unigram_word(std::string_view(normalized).substr(begin, next - begin), out);
            begin = next;
        }
    }

    // tokenizers `Unigram::encode_optimized` (unigram/model.rs): best path in double precision,
    // a forward pass over char starts where a later candidate replaces the stored one only if
    // strictly better; a char no piece covers becomes <unk> (unk_score); consecutive unknowns
    // are fused into one token. libsentencepiece's own Viterbi sums in float and can break
    // exact ties the other way (e.g. "www" = w+ww or ww+w), so it is not used for this step.
    void unigram_word(std::string_view word, std::vector<std::int64_t>& out) const {
        struct Best {
            double score = 0.0;
            std::size_t start = 0;
            std::int64_t id = -1;  // -1: not reached
        };
        const std::size_t n = word.size();
        std::vector<Best> best(n + 1);
        best[0].id = 0;
        for (std::size_t start = 0; start < n;) {
            const std::size_t mblen =
                std::min(detail::utf8_len(static_cast<unsigned char>(word[start])), n - start);
            const double base = best[start].score;
            bool single_char_piece = false;
            const std::size_t max_len = std::min(vocab_->max_piece_bytes, n - start);
            for (std::size_t len = 1; len <= max_len; ++len) {
                const auto it = vocab_->pieces.find(std::string(word.substr(start, len)));
                if (it == vocab_->pieces.end()) continue;
                Best& target = best[start + len];
                const double candidate = base + it->second.second;
                if (target.id < 0 || candidate > target.score) target = {candidate, start, it->second.first};
                if (len == mblen) single_char_piece = true;
            }
            if (!single_char_piece) {
                Best& target = best[start + mblen];
                const double candidate = base + vocab_->unk_score;
                if (target.id < 0 || candidate > target.score) target = {candidate, start, kUnkId};
            }
            start += mblen;
        }
        // Backtrack; fused unknown spans are looked up again by their text, as the reference
        // maps its token strings back to ids.
        std::vector<std::int64_t> ids;
        std::size_t end = n, unk_end = n;
        bool in_unk = false;
        auto flush_unk = [&](std::size_t unk_begin) {
            const auto it = vocab_->pieces.find(std::string(word.substr(unk_begin, unk_end - unk_begin)));
            ids.push_back(it == vocab_->pieces.end() ? kUnkId : it->second.first);
            in_unk = false;
        };
        while (end > 0) {
            const Best& node = best[end];
            if (node.id == kUnkId) {
                if (!in_unk) {
                    in_unk = true;
                    unk_end = end;
                }
            } else {
                if (in_unk) flush_unk(end);
                ids.push_back(node.id);
            }
            end = node.start;
        }
        if (in_unk) flush_unk(0);
        out.insert(out.end(), ids.rbegin(), ids.rend());
    }

    struct Vocab {
        std::unordered_map<std::string, std::pair<std::int64_t, double>> pieces;  // piece -> id, score
        std::size_t max_piece_bytes = 0;
        double unk_score = 0.0;
    };

    std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp_;
    std::shared_ptr<const Vocab> vocab_;
    std::int64_t spm_size_ = 0;
    std::int64_t max_len_ = 512;
};

}  // namespace altclip
