// The library's JSON reader (include/altclip/format/json.hpp) against nlohmann_json: the same
// values for every valid document, a FormatError naming the byte for every invalid one (never
// a crash or another exception), and the stricter rules (duplicate keys, depth, value count).
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <altclip/format/json.hpp>

#include "json_nlohmann.hpp"

using altclip::json::parse;
using altclip::json::Value;
using altclip_test::to_nlohmann;
using Catch::Matchers::Contains;

namespace {

const std::vector<std::string> kValid = {
    "null", "true", "false", "0", "-0", "1", "-1", "42", "  7  ", "\t\r\n[]\n", "{}", "[]", "\"\"",
    // integers at the edges of 64 bits, and offsets above 2^53 that a double would round
    "9223372036854775807", "-9223372036854775808", "9223372036854775808", "18446744073709551615",
    "9007199254740993", "[9007199254740993, 4503599627370497, 123456789012345678]",
    // integers beyond 64 bits become doubles, as in nlohmann
    "18446744073709551616", "-9223372036854775809", "123456789012345678901234567890",
    // floats and exponents
    "0.5", "-0.25", "3.141592653589793", "1e3", "1E3", "1e+3", "1e-3", "-1.5e-7", "2.5E+10", "0e0", "0.0",
    "-0.0", "1e308", "1.7976931348623157e308", "2.2250738585072014e-308", "4.9e-324", "1e-400", "-1e-400",
    "0.1", "0.30000000000000004", "100000000000000000000000.0", "1e-7", "123.456e-2", "5e-324",
    // strings: escapes, unicode, surrogate pairs, raw UTF-8 of every length
    R"("a\"b\\c\/d\be\ff\ng\rh\ti")", R"("\u0000\u001f\u0020\u007f")", R"("\u00e9\u4e2d\uFFFF")",
    R"("\ud83d\ude00 \uD834\uDD1E")", "\"caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF\"",
    "\"\xEF\xBB\xBF\"", "\"\xED\x9F\xBF\xEE\x80\x80\"",
    // nesting
    "[[[[[[[[[[]]]]]]]]]]", R"({"a":{"b":{"c":{"d":[1,[2,[3,{"e":null}]]]}}}})",
    R"([1, "two", 3.0, true, false, null, {"k": [ ]}, [ { } ] ])",
    // objects: key order, unicode keys, keys that differ only after a NUL
    R"({"z": 1, "a": 2, "m": {"y": [], "b": {}}})", "{\"\xC3\xA9\": 1, \"e\": 2, \"\\u00e9x\": 3}",
    R"({"a\u0000b": 1, "a": 2, "a\u0000": 3})",
    // a model-file-like header
    R"({"format": "altclip", "tensors": {"w": {"dtype": "f32", "shape": [2, 3], "offset": 9007199254740992,
        "size": 24, "layout": "panels"}}, "blobs": {}, "metadata": {"dtype": "bf16", "eps": 1e-05}})",
};

struct Invalid {
    std::string text;
    bool nlohmann_rejects;  // false where nlohmann accepts what this reader refuses on purpose
};

const std::vector<Invalid> kInvalid = {
    {"", true}, {"   ", true}, {"\n\t", true},
    // trailing garbage, several values
    {"1 2", true}, {"{} x", true}, {"[]]", true}, {"null,", true}, {"\"a\"\"b\"", true}, {std::string("1\0", 2), false} /* nlohmann stops at a NUL */,
    // structure
    {"[1,]", true}, {"[,1]", true}, {"{\"a\":1,}", true}, {"{,}", true}, {"{\"a\"}", true}, {"{\"a\" 1}", true},
    {"{1: 2}", true}, {"{a: 2}", true}, {"['a']", true}, {"[1 2]", true}, {"[", true}, {"{", true},
    {"{\"a\":", true}, {"[1,", true}, {"]", true}, {"}", true}, {":", true}, {"{\"a\":1 \"b\":2}", true},
    // literals
    {"nul", true}, {"nulll", true}, {"True", true}, {"NULL", true}, {"tru", true}, {"f", true},
    {"NaN", true}, {"Infinity", true}, {"-Infinity", true}, {"nan", true}, {"[NaN]", true}, {"inf", true},
    // numbers
    {"01", true}, {"-01", true}, {"00", true}, {"+1", true}, {"-", true}, {"1.", true}, {".5", true},
    {"1.e5", true}, {"1e", true}, {"1e+", true}, {"1e-", true}, {"--1", true}, {"0x10", true}, {"1_000", true},
    {"1e400", true}, {"-1e400", true}, {"1.5e99999999999999999999", true}, {"- 1", true},
    // strings
    {"\"abc", true}, {"\"abc\\\"", true}, {"\"\\", true}, {"\"\\q\"", true}, {"\"\\x41\"", true},
    {"\"\\U0041\"", true}, {"\"\\u12\"", true}, {"\"\\u12G4\"", true}, {"\"\\u\"", true}, {"\"\\'\"", true},
    {"\"a\nb\"", true}, {"\"a\tb\"", true}, {std::string("\"a\0b\"", 5), true}, {"\"\x1f\"", true},
    {"'single'", true},
    // lone and broken surrogates
    {R"("\ud800")", true}, {R"("\udc00")", true}, {R"("\ud800\u0041")", true}, {R"("\ud800\ud800")", true},
    {R"("\ud800x")", true}, {R"("\udfff\ud800")", true}, {R"("\ud800\")", true}, {R"("\ud800\u")", true},
    // invalid UTF-8: stray continuation, truncated sequences, overlong forms, encoded surrogates,
    // above U+10FFFF, bytes that never occur
    {"\"\x80\"", true}, {"\"\xBF\"", true}, {"\"\xC3\"", true}, {"\"\xE4\xB8\"", true}, {"\"\xF0\x9F\x98\"", true},
    {"\"\xC0\xAF\"", true}, {"\"\xC1\xBF\"", true}, {"\"\xE0\x80\xAF\"", true}, {"\"\xE0\x9F\xBF\"", true},
    {"\"\xF0\x80\x80\xAF\"", true}, {"\"\xF0\x8F\xBF\xBF\"", true}, {"\"\xED\xA0\x80\"", true},
    {"\"\xED\xBF\xBF\"", true}, {"\"\xF4\x90\x80\x80\"", true}, {"\"\xF5\x80\x80\x80\"", true},
    {"\"\xF8\x88\x80\x80\x80\"", true}, {"\"\xFE\"", true}, {"\"\xFF\"", true}, {"\"\xC3\x28\"", true},
    {"\xEF\xBB\xBF{}", false},  // a byte order mark is not JSON white space (nlohmann skips it)
    // invalid UTF-8 outside strings
    {"[\xC3\xA9]", true},
    // what this reader refuses and nlohmann accepts: repeated keys, depth, values past the limit
    {R"({"a": 1, "a": 2})", false}, {R"({"a": 1, "b": {"c": 1, "c": 1}})", false},
    {R"({"x": 1, "y": 2, "x": 3})", false}, {std::string(65, '[') + std::string(65, ']'), false},
};

}  // namespace

TEST_CASE("json: every valid document reads as nlohmann reads it", "[json]") {
    for (const std::string& text : kValid) {
        INFO(text);
        Value ours;
        REQUIRE_NOTHROW(ours = parse(text));
        const nlohmann::json theirs = nlohmann::json::parse(text);
        CHECK(to_nlohmann(ours) == theirs);
        CHECK(ours.is_integer() == theirs.is_number_integer());
        CHECK(ours.is_unsigned() == theirs.is_number_unsigned());
        // dump() writes JSON that reads back to the same value
        CHECK(to_nlohmann(parse(ours.dump())) == theirs);
    }
}

TEST_CASE("json: 64-bit integers stay exact, floats are read independently of the locale", "[json]") {
    CHECK(parse("18446744073709551615").as_uint64() == std::numeric_limits<std::uint64_t>::max());
    CHECK(parse("9223372036854775807").as_int64() == std::numeric_limits<std::int64_t>::max());
    CHECK(parse("-9223372036854775808").as_int64() == std::numeric_limits<std::int64_t>::min());
    CHECK(parse("9007199254740993").as_uint64() == 9007199254740993ull);  // 2^53 + 1: a double says ...992
    CHECK(parse("[12345678901234567]")[0].as_uint64() == 12345678901234567ull);
    CHECK_FALSE(parse("18446744073709551616").is_integer());
    CHECK(parse("18446744073709551616").as_double() == 18446744073709551616.0);
    CHECK_FALSE(parse("-0").is_unsigned());  // as nlohmann: a signed integer
    CHECK(parse("-0").as_int64() == 0);
    CHECK(parse("1.0").is_number());
    CHECK_FALSE(parse("1.0").is_integer());
    CHECK(parse("1e2").as_double() == 100.0);
    CHECK(parse("0.1").as_double() == 0.1);
    CHECK(parse("1e-400").as_double() == 0.0);
    CHECK(std::signbit(parse("-1e-400").as_double()));
    CHECK(parse("4.9e-324").as_double() == std::numeric_limits<double>::denorm_min());
    CHECK(parse("1.7976931348623157e308").as_double() == std::numeric_limits<double>::max());
    // A number as another type is the caller's mistake, reported as an altclip::Error.
    CHECK_THROWS_AS(parse("-1").as_uint64(), altclip::InvalidArgument);
    CHECK_THROWS_AS(parse("18446744073709551615").as_int64(), altclip::InvalidArgument);
    CHECK_THROWS_AS(parse("1.5").as_int64(), altclip::InvalidArgument);
    CHECK_THROWS_AS(parse("\"1\"").as_double(), altclip::InvalidArgument);
    CHECK_THROWS_AS(parse("[1]")[1], altclip::InvalidArgument);
    CHECK_THROWS_AS(parse("{}").at("a"), altclip::InvalidArgument);
    CHECK_THROWS_AS(parse("[]").members(), altclip::InvalidArgument);
}

TEST_CASE("json: every invalid document is a FormatError naming the byte, never a crash", "[json]") {
    for (const Invalid& bad : kInvalid) {
        INFO(nlohmann::json(bad.text).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace));
        CHECK_THROWS_AS(parse(bad.text), altclip::FormatError);
        CHECK_THROWS_WITH(parse(bad.text), Contains("JSON: byte "));
        bool nlohmann_rejects = false;
        try {
            const nlohmann::json theirs = nlohmann::json::parse(bad.text);
            CHECK(theirs.is_discarded() == false);  // parsed: nlohmann accepts it
        } catch (const nlohmann::json::exception&) {
            nlohmann_rejects = true;
        }
        CHECK(nlohmann_rejects == bad.nlohmann_rejects);
    }
}

TEST_CASE("json: messages say where and what", "[json]") {
    CHECK_THROWS_WITH(parse(""), "JSON: byte 0: empty input; expected a JSON value");
    CHECK_THROWS_WITH(parse("[1,]"), Contains("byte 3") && Contains("']'"));
    CHECK_THROWS_WITH(parse("{\"a\": 1} x"), Contains("byte 9") && Contains("after the JSON value"));
    CHECK_THROWS_WITH(parse("[01]"), Contains("byte 1") && Contains("leading zero"));
    CHECK_THROWS_WITH(parse("[\"ok\", \"\\q\"]"), Contains("byte 8") && Contains("invalid escape") && Contains("'q'"));
    CHECK_THROWS_WITH(parse("\"\\ud800\""), Contains("byte 1") && Contains("surrogate"));
    CHECK_THROWS_WITH(parse("\"ab\xC0\xAF\""), Contains("byte 3") && Contains("invalid UTF-8 (byte 0xC0)"));
    CHECK_THROWS_WITH(parse("\"a\nb\""), Contains("byte 2") && Contains("control character byte 0x0A"));
    CHECK_THROWS_WITH(parse("\"abc"), Contains("byte 0") && Contains("unterminated string"));
    CHECK_THROWS_WITH(parse("NaN"), Contains("unexpected 'N'"));
    CHECK_THROWS_WITH(parse("1e400"), Contains("too large"));
    CHECK_THROWS_WITH(parse(R"({"b": 1, "a": 2, "b": 3})"), Contains("byte 17") && Contains("duplicate key \"b\""));
}

TEST_CASE("json: nesting and value limits", "[json]") {
    // 64 levels are read; the 65th is refused, and a depth bomb costs no stack.
    CHECK_NOTHROW(parse(std::string(64, '[') + std::string(64, ']')));
    CHECK_THROWS_WITH(parse(std::string(65, '[') + std::string(65, ']')), Contains("byte 64") && Contains("deeper than 64"));
    CHECK_THROWS_AS(parse(std::string(1000000, '[')), altclip::FormatError);
    std::string objects;
    for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
    CHECK_THROWS_AS(parse(objects), altclip::FormatError);
    altclip::json::Limits limits;
    limits.max_values = 4;
    CHECK_NOTHROW(parse("[1, 2, 3]", limits));
    CHECK_THROWS_WITH(parse("[1, 2, 3, 4]", limits), Contains("more than 4 values"));
    limits.max_depth = 2;
    limits.max_values = 100;
    CHECK_NOTHROW(parse("[[1]]", limits));
    CHECK_THROWS_AS(parse("[[[1]]]", limits), altclip::FormatError);
}

TEST_CASE("json: lookups, members in key order, values built in code", "[json]") {
    const Value v = parse(R"({"b": [1, {"c": "d"}], "a": null, "e": true})");
    CHECK(v.size() == 3);
    CHECK(v["b"][1]["c"].as_string() == "d");
    CHECK(v["missing"]["deeper"].is_null());  // lookups chain and end in null
    CHECK(v.contains("a"));
    CHECK(v["a"].is_null());
    CHECK_FALSE(v.contains("z"));
    CHECK(v.find("z") == nullptr);
    CHECK(v["b"].find("c") == nullptr);  // not an object
    CHECK(v.at("e").as_bool());
    std::vector<std::string> keys;
    for (const auto& [key, value] : v.members()) {
        keys.push_back(key);
        CHECK(&value == v.find(key));
    }
    CHECK(keys == std::vector<std::string>{"a", "b", "e"});
    CHECK(v["b"].elements().size() == 2);
    CHECK(std::string(v["b"].type_name()) == "array");

    const Value built = Value::object({{"n", 3}, {"neg", -2}, {"f", 0.5}, {"s", "x"}, {"l", Value::array({true, nullptr})}});
    CHECK(built.dump() == R"({"f":0.5,"l":[true,null],"n":3,"neg":-2,"s":"x"})");
    CHECK_THROWS_AS(Value::object({{"k", 1}, {"k", 2}}), altclip::InvalidArgument);
}

TEST_CASE("json: dump escapes control bytes and writes bytes that are not UTF-8 as U+FFFD", "[json]") {
    CHECK(Value(std::string("a\"b\\c\n\t\r\b\f\x01\x1f\x7f")).dump() == R"("a\"b\\c\n\t\r\b\f\u0001\u001f\u007f")");
    CHECK(Value(std::string("\xC2\x85 \xC3\xA9")).dump() == "\"\\u0085 \xC3\xA9\"");  // C1 control escaped
    CHECK(Value(std::string("\xFF\xFE ok \xC0\xAF")).dump() == "\"\xEF\xBF\xBD\xEF\xBF\xBD ok \xEF\xBF\xBD\xEF\xBF\xBD\"");
    CHECK_NOTHROW(parse(Value(std::string("\xED\xA0\x80\x80\xF4\x90\x80\x80")).dump()));  // valid JSON, always
    CHECK(Value(1.0).dump() == "1.0");
    CHECK(Value(1e300).dump() == "1e+300");
    CHECK(Value(std::numeric_limits<double>::infinity()).dump() == "null");
    CHECK(Value(std::numeric_limits<std::uint64_t>::max()).dump() == "18446744073709551615");
    const std::string long_text(500, 'x');
    CHECK(Value(long_text).dump_short(20) == "\"" + std::string(19, 'x') + "...");
    CHECK(Value(std::string(30, '\xC3') + "").dump_short(10).size() <= 13);
    const std::string accents = "\"" + std::string(10, 'a') + "\xC3\xA9\xC3\xA9\xC3\xA9\"";
    const std::string cut = parse(accents).dump_short(12);  // inside the second byte of an é: cut before it
    CHECK(cut == "\"aaaaaaaaaa...");
}

TEST_CASE("json: mutated documents are read as nlohmann reads them, or refused cleanly", "[json]") {
    // Random byte flips, insertions, deletions and cuts of the valid corpus (a fixed seed): this
    // reader never crashes or throws anything but FormatError; where it accepts, nlohmann
    // accepts the same value; where only nlohmann accepts, the reason is a rule of ours.
    std::mt19937 rng(20240516);
    const std::string alphabet = "{}[],:\"\\/ \t\n0123456789-+.eEtrufalsn\x80\xC3\xA9\xED\xF0uUdD\x01";
    int ours_accepted = 0, both = 0;
    for (int round = 0; round < 20000; ++round) {
        std::string text = kValid[rng() % kValid.size()];
        const int edits = 1 + static_cast<int>(rng() % 3);
        for (int e = 0; e < edits && !text.empty(); ++e) {
            const std::size_t at = rng() % (text.size() + 1);
            const char c = alphabet[rng() % alphabet.size()];
            switch (rng() % 4) {
                case 0: if (at < text.size()) text[at] = c; break;
                case 1: text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), c); break;
                case 2: if (at < text.size()) text.erase(at, 1); break;
                default: text.resize(at); break;
            }
        }
        bool ok = false;
        std::string why;
        Value ours;
        try {
            ours = parse(text);
            ok = true;
        } catch (const altclip::FormatError& e) {
            why = e.what();
        }
        nlohmann::json theirs;
        bool theirs_ok = true;
        try {
            theirs = nlohmann::json::parse(text);
        } catch (const nlohmann::json::exception&) {
            theirs_ok = false;
        }
        INFO(nlohmann::json(text).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace) << " -> " << why);
        if (ok) {
            ++ours_accepted;
            REQUIRE(theirs_ok);
            REQUIRE(to_nlohmann(ours) == theirs);
        } else if (theirs_ok) {
            REQUIRE((why.find("duplicate key") != std::string::npos || why.find("too large") != std::string::npos));
        }
        both += ok && theirs_ok;
    }
    CHECK(ours_accepted > 1000);  // the mutations leave enough valid documents to compare
    CHECK(both == ours_accepted);
}
