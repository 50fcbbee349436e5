// XLMRobertaTokenizer against the transformers reference (tools/make_tokenizer_reference.py).
#include <catch2/catch.hpp>

#include <altclip/container.hpp>
#include <altclip/tokenizer.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include "json_nlohmann.hpp"

namespace {

const std::string kData = ALTCLIP_TEST_DATA;

std::string read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    REQUIRE(f.good());
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

const altclip::XLMRobertaTokenizer& tokenizer() {
    static const altclip::XLMRobertaTokenizer tok =
        altclip::XLMRobertaTokenizer::from_file(kData + "/sentencepiece.bpe.model");
    return tok;
}

const altclip::Container& reference() {
    static const altclip::Container ref(kData + "/tokenizer_reference.ref");
    return ref;
}

std::vector<std::string> read_corpus() {
    std::ifstream f(kData + "/tokenizer_corpus.jsonl", std::ios::binary);
    REQUIRE(f.good());
    std::vector<std::string> lines;
    std::string line;
    while (std::getline(f, line)) {
        if (!line.empty()) lines.push_back(nlohmann::json::parse(line).get<std::string>());
    }
    return lines;
}

std::string ids_str(const std::vector<std::int64_t>& ids) {
    std::string s = "[";
    for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
    return s + "]";
}

std::vector<std::int64_t> row(const std::vector<std::int64_t>& flat,
                              const std::vector<std::int64_t>& offsets, std::size_t i) {
    return {flat.begin() + offsets[i], flat.begin() + offsets[i + 1]};
}

std::string what_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("tokenizer: special ids and sizes match the reference", "[tokenizer]") {
    const auto meta = altclip_test::to_nlohmann(reference().header()["metadata"]);
    const auto& tok = tokenizer();
    CHECK(tok.vocab_size() == meta["vocab_size"].get<std::int64_t>());
    CHECK(tok.pad_token_id() == meta["pad_token_id"].get<std::int64_t>());
    CHECK(tok.mask_token_id() == meta["mask_token_id"].get<std::int64_t>());
    CHECK(tok.model_max_length() == 512);
    CHECK(tok.encode("") == std::vector<std::int64_t>{0, 2});
}

TEST_CASE("tokenizer: every corpus line equals the reference", "[tokenizer]") {
    const auto corpus = read_corpus();
    const auto ids = reference().tensor("corpus_ids").to_i64();
    const auto offsets = reference().tensor("corpus_offsets").to_i64();
    REQUIRE(corpus.size() >= 200);
    REQUIRE(offsets.size() == corpus.size() + 1);
    REQUIRE(altclip_test::to_nlohmann(reference().header()["metadata"]["corpus_lines"]).get<std::size_t>() == corpus.size());
    std::size_t matched = 0;
    for (std::size_t i = 0; i < corpus.size(); ++i) {
        const auto expected = row(ids, offsets, i);
        const auto got = tokenizer().encode(corpus[i]);
        if (got == expected) {
            ++matched;
        } else {
            FAIL_CHECK("corpus line " << i + 1 << ": " << nlohmann::json(corpus[i]).dump()
                                      << "\n  reference " << ids_str(expected)
                                      << "\n  ours      " << ids_str(got));
        }
    }
    INFO(matched << " of " << corpus.size() << " corpus lines match");
    CHECK(matched == corpus.size());
}

TEST_CASE("tokenizer: padded batch equals the reference", "[tokenizer]") {
    const auto meta = altclip_test::to_nlohmann(reference().header()["metadata"]);
    const auto texts = meta["batch_texts"].get<std::vector<std::string>>();
    const auto& ref_ids = reference().tensor("batch_input_ids");
    const auto& ref_mask = reference().tensor("batch_attention_mask");
    const auto enc = tokenizer()(texts);
    REQUIRE(ref_ids.shape.size() == 2);
    CHECK(enc.batch == static_cast<std::int64_t>(ref_ids.shape[0]));
    CHECK(enc.seq_len == static_cast<std::int64_t>(ref_ids.shape[1]));
    CHECK(enc.input_ids == ref_ids.to_i64());
    CHECK(enc.attention_mask == ref_mask.to_i64());
    REQUIRE(enc.lengths.size() == texts.size());
    for (std::size_t b = 0; b < texts.size(); ++b) {
        INFO("row " << b);
        CHECK(enc.lengths[b] == static_cast<std::int64_t>(tokenizer().encode(texts[b]).size()));
    }
}

TEST_CASE("tokenizer: truncation at, just over and far over the limit", "[tokenizer]") {
    const auto meta = altclip_test::to_nlohmann(reference().header()["metadata"]);
    const auto ids = reference().tensor("trunc_ids").to_i64();
    const auto offsets = reference().tensor("trunc_offsets").to_i64();
    const auto model_bytes = read_bytes(kData + "/sentencepiece.bpe.model");
    const auto& cases = meta["truncation"];
    REQUIRE(cases.size() == 6);
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const auto limit = cases[i]["model_max_length"].get<std::int64_t>();
        const auto text = cases[i]["text"].get<std::string>();
        const altclip::XLMRobertaTokenizer tok(model_bytes, limit);
        const auto expected = row(ids, offsets, i);
        const auto got = tok.encode(text);
        INFO("case " << cases[i]["kind"].get<std::string>() << " limit " << limit << "\n  reference "
                     << ids_str(expected) << "\n  ours      " << ids_str(got));
        CHECK(got == expected);
        CHECK(static_cast<std::int64_t>(got.size()) ==
              std::min(limit, cases[i]["untruncated_length"].get<std::int64_t>()));
        CHECK(got.front() == 0);
        CHECK(got.back() == 2);
    }
    // A padded batch with model_max_length 16.
    const altclip::XLMRobertaTokenizer tok16(model_bytes,
                                             meta["trunc_batch_model_max_length"].get<std::int64_t>());
    const auto enc = tok16(meta["trunc_batch_texts"].get<std::vector<std::string>>());
    CHECK(enc.input_ids == reference().tensor("trunc_batch_input_ids").to_i64());
    CHECK(enc.attention_mask == reference().tensor("trunc_batch_attention_mask").to_i64());
    CHECK(enc.seq_len == 16);
    // The smallest limit keeps only <s> </s>.
    CHECK(altclip::XLMRobertaTokenizer(model_bytes, 2).encode("a photo of a cat") ==
          std::vector<std::int64_t>{0, 2});
    CHECK_THROWS_AS(altclip::XLMRobertaTokenizer(model_bytes, 1), altclip::InvalidArgument);
}

TEST_CASE("tokenizer: documented differences from the reference (docs/tokenizer.md)", "[tokenizer]") {
    // Each case asserts the exact ids we give and that the reference gives other ids, so the
    // test fails when either side changes and the documentation must be revisited.
    const auto& diffs = altclip_test::to_nlohmann(reference().header()["metadata"]["differences"]);
    REQUIRE(diffs.size() == 9);
    for (const auto& d : diffs) {
        const auto text = d["text"].get<std::string>();
        const auto ref = d["reference"].get<std::vector<std::int64_t>>();
        const auto ours = d["ours"].get<std::vector<std::int64_t>>();
        const auto got = tokenizer().encode(text);
        INFO(nlohmann::json(text).dump() << " (" << d["why"].get<std::string>() << ")\n  reference "
                                         << ids_str(ref) << "\n  documented ours " << ids_str(ours)
                                         << "\n  ours now " << ids_str(got));
        CHECK(got == ours);
        CHECK(got != ref);
    }
}

TEST_CASE("tokenizer: invalid UTF-8 is a TextError naming the text", "[tokenizer]") {
    const auto& tok = tokenizer();
    struct Case {
        std::string text, why;
    };
    const std::vector<Case> cases = {
        {std::string("abc\x80" "def"), "unexpected continuation byte"},
        {std::string("caf\xC3"), "truncated multi-byte sequence"},
        {std::string("\xE4\xB8 x"), "truncated multi-byte sequence"},
        {std::string("over\xC0\xAF" "long"), "overlong encoding"},
        {std::string("\xE0\x80\xAF"), "overlong encoding"},
        {std::string("\xF0\x80\x80\xAF"), "overlong encoding"},
        {std::string("sur\xED\xA0\x80rogate"), "UTF-16 surrogate"},
        {std::string("big\xF4\x90\x80\x80"), "above U+10FFFF"},
        {std::string("\xFF"), "never appears in UTF-8"},
    };
    for (const auto& c : cases) {
        INFO(c.why);
        CHECK_THROWS_AS(tok.encode(c.text), altclip::TextError);
        const auto msg = what_of([&] { tok.encode(c.text); });
        CHECK_THAT(msg, Catch::Contains(c.why));
        CHECK_THAT(msg, Catch::Contains("decode the text"));
    }
    // In a batch the message gives the index and an escaped excerpt.
    const auto msg = what_of([&] { tok({"fine", "also fine", std::string("bad \xC0\xAF here")}); });
    CHECK_THAT(msg, Catch::Contains("text 2 of the batch"));
    CHECK_THAT(msg, Catch::Contains("bad \\xC0\\xAF here"));
    CHECK_THAT(msg, Catch::Contains("offset 4"));
    CHECK_THROWS_AS(tok({"ok", std::string("\xED\xBF\xBF")}), altclip::TextError);
}

TEST_CASE("tokenizer: empty batch is an InvalidArgument, empty text is valid", "[tokenizer]") {
    CHECK_THROWS_AS(tokenizer()(std::vector<std::string>{}), altclip::InvalidArgument);
    CHECK_THAT(what_of([] { tokenizer()(std::vector<std::string>{}); }), Catch::Contains("empty batch"));
    const auto enc = tokenizer()({""});
    CHECK(enc.batch == 1);
    CHECK(enc.seq_len == 2);
    CHECK(enc.input_ids == std::vector<std::int64_t>{0, 2});
    CHECK(enc.attention_mask == std::vector<std::int64_t>{1, 1});
}

TEST_CASE("tokenizer: bad model bytes are a FormatError", "[tokenizer]") {
    CHECK_THROWS_AS(altclip::XLMRobertaTokenizer(std::string_view("not a model")), altclip::FormatError);
    const auto bytes = read_bytes(kData + "/sentencepiece.bpe.model");
    CHECK_THROWS_AS(altclip::XLMRobertaTokenizer(std::string_view(bytes).substr(0, bytes.size() / 2)),
                    altclip::FormatError);
    CHECK_THAT(what_of([] { altclip::XLMRobertaTokenizer t(std::string_view("\x0a\x05garbage")); }),
               Catch::Contains("sentencepiece.bpe.model"));
    CHECK_THROWS_AS(altclip::XLMRobertaTokenizer::from_file(kData + "/no_such.model"), altclip::IoError);
}

TEST_CASE("tokenizer: const encode is safe from several threads", "[tokenizer]") {
    const auto corpus = read_corpus();
    std::vector<std::vector<std::int64_t>> expected;
    for (const auto& t : corpus) expected.push_back(tokenizer().encode(t));
    std::atomic<int> mismatches{0};
    std::vector<std::thread> threads;
    for (int k = 0; k < 4; ++k) {
        threads.emplace_back([&, k] {
            for (int rep = 0; rep < 3; ++rep) {
                for (std::size_t i = k; i < corpus.size(); i += 1) {
                    if (tokenizer().encode(corpus[(i + k * 37) % corpus.size()]) !=
                        expected[(i + k * 37) % corpus.size()]) {
                        ++mismatches;
                    }
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(mismatches == 0);
}
