// A small, strict, read-only JSON reader (RFC 8259) for the model file's header and the
// configs stored in it, so that reading a model file needs no JSON library.
//
// Strict: one value, surrounded only by JSON white space; no comments, trailing commas, NaN
// or Infinity, leading zeros or '+' signs; strings are valid UTF-8 (no overlong forms, no
// encoded surrogates, nothing above U+10FFFF) without raw control characters, and a \u
// escape of a surrogate must be a high one followed by its low one. An object with the same
// key twice is refused (readers disagree on which one wins). Nesting is limited (the header
// needs 5 levels) and so is the number of values (each costs memory far beyond its bytes).
// Every failure is an altclip::FormatError naming the byte offset and what was wrong.
//
// Numbers keep whether they were written as integers: an integer literal that fits 64 bits
// (signed when written with '-', unsigned otherwise) is held exactly, so offsets above 2^53 survive;
// one that does not, or one with a fraction or exponent, is a double, read the same in any
// locale (std::from_chars). A double too large for the type is an error; one too small
// becomes 0 with its sign, as strtod gives it.
//
// Objects are held sorted by key (byte order), as a std::map would hold them.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <numeric>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "../errors.hpp"

namespace altclip {
namespace json {

enum class Type : unsigned char { null, boolean, number, string, array, object };

/// Bounds on what parse() accepts; past them the document is refused with a FormatError.
struct Limits {
    /// Deepest nesting of arrays and objects (the model file's header uses 5).
    int max_depth = 64;
    /// Most values in one document (the real model's header has about 5,000); each costs
    /// about 100 bytes of memory, so this keeps a hostile 100 MB header under 200 MB.
    std::size_t max_values = std::size_t(1) << 21;
};

class Value;

/// One member of an object, as members() yields it.
struct MemberRef {
    const std::string& key;
    const Value& value;
};

/// A JSON value. Immutable once parsed (or built); copies are deep.
class Value {
public:
    Value() = default;
    Value(std::nullptr_t) {}
    Value(bool b) : type_(Type::boolean), bool_(b) {}
    template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
    Value(T v) : type_(Type::number) {
        if constexpr (std::is_signed_v<T>) {
            if (v < 0) {
                kind_ = Kind::signed_integer;
                num_.i = static_cast<std::int64_t>(v);
                return;
            }
        }
        kind_ = Kind::unsigned_integer;
        num_.u = static_cast<std::uint64_t>(v);
    }
    Value(double d) : type_(Type::number), kind_(Kind::floating) { num_.d = d; }
    Value(std::string s) : type_(Type::string), str_(std::move(s)) {}
    Value(const char* s) : Value(std::string(s)) {}

    /// An array of `items`.
    static Value array(std::vector<Value> items = {}) {
        Value v;
        v.type_ = Type::array;
        v.items_ = std::move(items);
        return v;
    }
    /// An object of `members`; throws InvalidArgument if a key appears twice.
    static Value object(std::vector<std::pair<std::string, Value>> members = {}) {
        Value v;
        v.type_ = Type::object;
        v.set_members(members, [](std::size_t i, const std::string& key) {
            throw InvalidArgument("json::Value::object: member " + std::to_string(i) + " repeats the key " +
                                  quote(key) + "; each key may appear once");
        });
        return v;
    }

    Type type() const { return type_; }
    bool is_null() const { return type_ == Type::null; }
    bool is_bool() const { return type_ == Type::boolean; }
    bool is_number() const { return type_ == Type::number; }
    /// A number written without fraction or exponent that fits 64 bits.
    bool is_integer() const { return is_number() && kind_ != Kind::floating; }
    /// An integer written without a minus sign (any value up to 2^64 - 1; "-0" is not one).
    bool is_unsigned() const { return is_number() && kind_ == Kind::unsigned_integer; }
    bool is_string() const { return type_ == Type::string; }
    bool is_array() const { return type_ == Type::array; }
    bool is_object() const { return type_ == Type::object; }

    /// "null", "boolean", "number", "string", "array" or "object".
    const char* type_name() const {
        switch (type_) {
            case Type::null: return "null";
            case Type::boolean: return "boolean";
            case Type::number: return "number";
            case Type::string: return "string";
            case Type::array: return "array";
            case Type::object: return "object";
        }
        return "?";
    }

    // Typed reads; each throws InvalidArgument on a value of another type (check first).
    bool as_bool() const {
        expect(Type::boolean);
        return bool_;
    }
    /// Any number, as a double (a 64-bit integer above 2^53 is rounded).
    double as_double() const {
        expect(Type::number);
        switch (kind_) {
            case Kind::unsigned_integer: return static_cast<double>(num_.u);
            case Kind::signed_integer: return static_cast<double>(num_.i);
            case Kind::floating: break;
        }
        return num_.d;
    }
    /// An integer in [INT64_MIN, INT64_MAX].
    std::int64_t as_int64() const {
        if (!is_integer() || (kind_ == Kind::unsigned_integer && num_.u > std::uint64_t(INT64_MAX))) {
            throw InvalidArgument("json::Value: " + dump_short() + " is not an integer of 64 bits");
        }
        return kind_ == Kind::signed_integer ? num_.i : static_cast<std::int64_t>(num_.u);
    }
    /// An integer in [0, UINT64_MAX].
    std::uint64_t as_uint64() const {
        if (!is_unsigned()) throw InvalidArgument("json::Value: " + dump_short() + " is not a non-negative integer");
        return num_.u;
    }
    const std::string& as_string() const {
        expect(Type::string);
        return str_;
    }

    /// Elements of an array, members of an object; 0 for any other value.
    std::size_t size() const { return is_array() || is_object() ? items_.size() : 0; }

    /// The elements of an array.
    const std::vector<Value>& elements() const {
        expect(Type::array);
        return items_;
    }
    /// Element `i` of an array; throws InvalidArgument if this is no array or `i` is past its end.
    const Value& operator[](std::size_t i) const {
        expect(Type::array);
        if (i >= items_.size()) {
            throw InvalidArgument("json::Value: index " + std::to_string(i) + " is past the end of an array of " +
                                  std::to_string(items_.size()));
        }
        return items_[i];
    }

    /// The member `key` of an object, or nullptr (absent, or this is no object).
    const Value* find(std::string_view key) const {
        if (!is_object()) return nullptr;
        auto it = std::lower_bound(keys_.begin(), keys_.end(), key,
                                   [](const std::string& a, std::string_view b) { return std::string_view(a) < b; });
        if (it == keys_.end() || *it != key) return nullptr;
        return &items_[static_cast<std::size_t>(it - keys_.begin())];
    }
    bool contains(std::string_view key) const { return find(key) != nullptr; }
    /// The member `key`; throws InvalidArgument if it is absent.
    const Value& at(std::string_view key) const {
        expect(Type::object);
        const Value* v = find(key);
        if (!v) throw InvalidArgument("json::Value: no member " + quote(std::string(key)));
        return *v;
    }
    /// The member `key`, or null if it is absent or this is no object: lookups chain
    /// (`v["a"]["b"]`) and end in null where a level is missing.
    const Value& operator[](std::string_view key) const {
        const Value* v = find(key);
        return v ? *v : null_value();
    }

    /// The members of an object, sorted by key: `for (const auto& [key, value] : v.members())`.
    class Members {
    public:
        class iterator {
        public:
            iterator(const Value* v, std::size_t i) : v_(v), i_(i) {}
            MemberRef operator*() const { return {v_->keys_[i_], v_->items_[i_]}; }
            iterator& operator++() {
                ++i_;
                return *this;
            }
            bool operator!=(const iterator& o) const { return i_ != o.i_; }
            bool operator==(const iterator& o) const { return i_ == o.i_; }

        private:
            const Value* v_;
            std::size_t i_;
        };
        explicit Members(const Value* v) : v_(v) {}
        iterator begin() const { return {v_, 0}; }
        iterator end() const { return {v_, v_->items_.size()}; }
        std::size_t size() const { return v_->items_.size(); }

    private:
        const Value* v_;
    };
    Members members() const {
        expect(Type::object);
        return Members(this);
    }

    /// Compact JSON text (no spaces). Control characters (C0, DEL, C1) are escaped, and bytes
    /// of a string that are not UTF-8 are written as U+FFFD, so the text is valid UTF-8 and
    /// safe to print. A double that is not finite is written as null.
    std::string dump() const {
        std::string out;
        write(out);
        return out;
    }
    /// dump(), cut to at most about `max_bytes` (at a character boundary) with "..." added:
    /// for error messages.
    std::string dump_short(std::size_t max_bytes = 200) const {
        std::string s = dump();
        if (s.size() <= max_bytes) return s;
        std::size_t cut = max_bytes;
        while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
        s.resize(cut);
        return s + "...";
    }

    /// `s` as a JSON string literal (dump()'s escaping).
    static std::string quote(const std::string& s) {
        std::string out;
        write_string(out, s);
        return out;
    }

private:
    friend class Parser;
    enum class Kind : unsigned char { unsigned_integer, signed_integer, floating };  // signed: written with '-'

    static const Value& null_value() {
        static const Value null;
        return null;
    }

    void expect(Type t) const {
        if (type_ != t) {
            Value want;
            want.type_ = t;
            throw InvalidArgument(std::string("json::Value: expected ") + (t == Type::array || t == Type::object ? "an " : "a ") +
                                  want.type_name() + ", got " + dump_short());
        }
    }

    // Sorts `members` by key into keys_/items_; on[dup](index, key) for a repeated key.
    template <class OnDuplicate>
    void set_members(std::vector<std::pair<std::string, Value>>& members, OnDuplicate on_duplicate) {
        std::vector<std::size_t> order(members.size());
        std::iota(order.begin(), order.end(), std::size_t(0));
        std::stable_sort(order.begin(), order.end(),
                         [&](std::size_t a, std::size_t b) { return members[a].first < members[b].first; });
        for (std::size_t k = 1; k < order.size(); ++k) {
            if (members[order[k]].first == members[order[k - 1]].first) {
                on_duplicate(std::max(order[k], order[k - 1]), members[order[k]].first);
            }
        }
        keys_.reserve(members.size());
        items_.reserve(members.size());
        for (std::size_t i : order) {
            keys_.push_back(std::move(members[i].first));
            items_.push_back(std::move(members[i].second));
        }
    }

    void write(std::string& out) const {
        switch (type_) {
            case Type::null: out += "null"; return;
            case Type::boolean: out += bool_ ? "true" : "false"; return;
            case Type::number: write_number(out); return;
            case Type::string: write_string(out, str_); return;
            case Type::array:
                out += '[';
                for (std::size_t i = 0; i < items_.size(); ++i) {
                    if (i) out += ',';
                    items_[i].write(out);
                }
                out += ']';
                return;
            case Type::object:
                out += '{';
                for (std::size_t i = 0; i < items_.size(); ++i) {
                    if (i) out += ',';
                    write_string(out, keys_[i]);
                    out += ':';
                    items_[i].write(out);
                }
                out += '}';
                return;
        }
    }

    void write_number(std::string& out) const {
        char buf[40] = {};
        std::to_chars_result r{buf, std::errc()};
        switch (kind_) {
            case Kind::unsigned_integer: r = std::to_chars(buf, buf + sizeof buf, num_.u); break;
            case Kind::signed_integer: r = std::to_chars(buf, buf + sizeof buf, num_.i); break;
            case Kind::floating:
                if (!std::isfinite(num_.d)) {
                    out += "null";
                    return;
                }
                r = std::to_chars(buf, buf + sizeof buf, num_.d);  // shortest text that reads back the same
                break;
        }
        const std::string_view text(buf, static_cast<std::size_t>(r.ptr - buf));
        out += text;
        if (kind_ == Kind::floating && text.find_first_of(".e") == std::string_view::npos) out += ".0";
    }

    // Length of the UTF-8 character at s[i] (1 to 4), or 0 if the bytes there are not one
    // (overlong forms, surrogates and code points above U+10FFFF are not).
    static std::size_t utf8_length(std::string_view s, std::size_t i) {
        const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
        const auto cont = [&](std::size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
        const unsigned char c = b(0);
        if (c < 0x80) return 1;
        if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
        if (c >= 0xE0 && c <= 0xEF) {
            if (!cont(1) || !cont(2)) return 0;
            if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
            if (c == 0xED && b(1) >= 0xA0) return 0;  // a surrogate, U+D800 to U+DFFF
            return 3;
        }
        if (c >= 0xF0 && c <= 0xF4) {
            if (!cont(1) || !cont(2) || !cont(3)) return 0;
            if (c == 0xF0 && b(1) < 0x90) return 0;   // overlong
            if (c == 0xF4 && b(1) >= 0x90) return 0;  // above U+10FFFF
            return 4;
        }
        return 0;  // a continuation byte, C0/C1 (always overlong) or F5 to FF
    }

    static void write_string(std::string& out, std::string_view s) {
        static const char* const hex = "0123456789abcdef";
        out += '"';
        for (std::size_t i = 0; i < s.size();) {
            const unsigned char c = static_cast<unsigned char>(s[i]);
            const std::size_t n = utf8_length(s, i);
            if (n == 0) {
                out += "\xEF\xBF\xBD";  // U+FFFD for a byte that is not UTF-8
                ++i;
                continue;
            }
            // Code point of a C1 control (U+0080 to U+009F) is C2 80 to C2 9F.
            const bool c1 = n == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0;
            if (n == 1 && c >= 0x20 && c != 0x7F && c != '"' && c != '\\') {
                out += static_cast<char>(c);
            } else if (c == '"' || c == '\\') {
                out += '\\';
                out += static_cast<char>(c);
            } else if (c == '\n') {
                out += "\\n";
            } else if (c == '\t') {
                out += "\\t";
            } else if (c == '\r') {
                out += "\\r";
            } else if (c == '\b') {
                out += "\\b";
            } else if (c == '\f') {
                out += "\\f";
            } else if (n == 1 || c1) {
                const unsigned code = n == 1 ? c : static_cast<unsigned char>(s[i + 1]);
                out += "\\u00";
                out += hex[code >> 4];
                out += hex[code & 15];
            } else {
                out.append(s.data() + i, n);
            }
            i += n;
        }
        out += '"';
    }

    Type type_ = Type::null;
    Kind kind_ = Kind::unsigned_integer;
    bool bool_ = false;
    union {
        std::uint64_t u;
        std::int64_t i;
        double d;
    } num_{};
    std::string str_;                // a string
    std::vector<Value> items_;       // an array's elements, an object's values
    std::vector<std::string> keys_;  // an object's keys, sorted; items_[k] belongs to keys_[k]
};

/// The recursive-descent reader behind parse().
class Parser {
public:
    Parser(const char* begin, const char* end, const Limits& limits) : begin_(begin), p_(begin), end_(end), limits_(limits) {}

    Value document() {
        if (begin_ == end_) fail(0, "empty input; expected a JSON value");
        Value v = value(0);
        skip_space();
        if (p_ != end_) fail(offset(), "unexpected " + here() + " after the JSON value");
        return v;
    }

private:
    [[noreturn]] void fail(std::size_t at, const std::string& what) const {
        throw FormatError("JSON: byte " + std::to_string(at) + ": " + what);
    }
    std::size_t offset() const { return static_cast<std::size_t>(p_ - begin_); }
    // What is at the cursor, for messages: a printable character quoted, any other byte in hex.
    std::string here() const {
        if (p_ == end_) return "end of input";
        const unsigned char c = static_cast<unsigned char>(*p_);
        if (c >= 0x21 && c < 0x7F) return std::string("'") + static_cast<char>(c) + "'";
        static const char* const hex = "0123456789ABCDEF";
        return std::string("byte 0x") + hex[c >> 4] + hex[c & 15];
    }

    void skip_space() {
        while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
    }

    void count_value() {
        if (++values_ > limits_.max_values) {
            fail(offset(), "more than " + std::to_string(limits_.max_values) + " values in one document");
        }
    }

    Value value(int depth) {
        skip_space();
        if (p_ == end_) fail(offset(), "unexpected end of input; expected a JSON value");
        count_value();
        switch (*p_) {
            case '{': return object(depth + 1);
            case '[': return array(depth + 1);
            case '"': return Value(string());
            case 't': return literal("true", Value(true));
            case 'f': return literal("false", Value(false));
            case 'n': return literal("null", Value());
            default:
                if (*p_ == '-' || (*p_ >= '0' && *p_ <= '9')) return number();
                fail(offset(), "unexpected " + here() + "; expected a JSON value");
        }
    }

    Value literal(std::string_view word, Value v) {
        if (static_cast<std::size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) {
            fail(offset(), "invalid literal; expected '" + std::string(word) + "'");
        }
        p_ += word.size();
        return v;
    }

    void enter(int depth) {
        if (depth > limits_.max_depth) {
            fail(offset(), "arrays and objects nested deeper than " + std::to_string(limits_.max_depth) + " levels");
        }
    }

    Value array(int depth) {
        enter(depth);
        ++p_;  // '['
        std::vector<Value> items;
        skip_space();
        if (p_ != end_ && *p_ == ']') {
            ++p_;
            return Value::array(std::move(items));
        }
        for (;;) {
            items.push_back(value(depth));
            skip_space();
            if (p_ == end_) fail(offset(), "unterminated array; expected ',' or ']'");
            if (*p_ == ']') {
                ++p_;
                return Value::array(std::move(items));
            }
            if (*p_ != ',') fail(offset(), "unexpected " + here() + " in an array; expected ',' or ']'");
            ++p_;
        }
    }

    Value object(int depth) {
        enter(depth);
        ++p_;  // '{'
        std::vector<std::pair<std::string, Value>> members;
        std::vector<std::size_t> key_offsets;
        skip_space();
        if (p_ != end_ && *p_ == '}') {
            ++p_;
            return Value::object();
        }
        for (;;) {
            skip_space();
            if (p_ == end_ || *p_ != '"') fail(offset(), "unexpected " + here() + " in an object; expected a key (a string)");
            key_offsets.push_back(offset());
            std::string key = string();
            skip_space();
            if (p_ == end_ || *p_ != ':') fail(offset(), "unexpected " + here() + " after an object key; expected ':'");
            ++p_;
            Value v = value(depth);
            members.emplace_back(std::move(key), std::move(v));
            skip_space();
            if (p_ == end_) fail(offset(), "unterminated object; expected ',' or '}'");
            if (*p_ == '}') {
                ++p_;
                break;
            }
            if (*p_ != ',') fail(offset(), "unexpected " + here() + " in an object; expected ',' or '}'");
            ++p_;
        }
        Value v;
        v.type_ = Type::object;
        v.set_members(members, [&](std::size_t i, const std::string& key) {
            fail(key_offsets[i], "duplicate key " + Value::quote(key) + " in an object; each key may appear once");
        });
        return v;
    }

    unsigned hex4(const char* start) {
        if (end_ - p_ < 4) fail(static_cast<std::size_t>(start - begin_), "truncated \\u escape; expected 4 hex digits");
        unsigned v = 0;
        for (int k = 0; k < 4; ++k, ++p_) {
            const char c = *p_;
            unsigned d;
            if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
            else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
            else fail(static_cast<std::size_t>(start - begin_), "invalid \\u escape; expected 4 hex digits");
            v = v * 16 + d;
        }
        return v;
    }

    static void append_utf8(std::string& s, unsigned cp) {
        if (cp < 0x80) {
            s += static_cast<char>(cp);
        } else if (cp < 0x800) {
            s += static_cast<char>(0xC0 | (cp >> 6));
            s += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            s += static_cast<char>(0xE0 | (cp >> 12));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            s += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            s += static_cast<char>(0xF0 | (cp >> 18));
            s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            s += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }

    std::string string() {
        const std::size_t start = offset();
        ++p_;  // '"'
        std::string s;
        for (;;) {
            // Copy a run of plain bytes at once.
            const char* run = p_;
            while (p_ != end_ && *p_ != '"' && *p_ != '\\' && static_cast<unsigned char>(*p_) >= 0x20 &&
                   static_cast<unsigned char>(*p_) < 0x80) {
                ++p_;
            }
            s.append(run, static_cast<std::size_t>(p_ - run));
            if (p_ == end_) fail(start, "unterminated string");
            const unsigned char c = static_cast<unsigned char>(*p_);
            if (c == '"') {
                ++p_;
                return s;
            }
            if (c < 0x20) fail(offset(), "control character " + here() + " in a string; write it as an escape (\\n, \\u0001)");
            if (c >= 0x80) {
                const std::size_t n = Value::utf8_length(std::string_view(p_, static_cast<std::size_t>(end_ - p_)), 0);
                if (n == 0) fail(offset(), "invalid UTF-8 (" + here() + ") in a string");
                s.append(p_, n);
                p_ += n;
                continue;
            }
            // A backslash.
            const char* esc = p_;
            ++p_;
            if (p_ == end_) fail(start, "unterminated string");
            const char e = *p_++;
            switch (e) {
                case '"': s += '"'; break;
                case '\\': s += '\\'; break;
                case '/': s += '/'; break;
                case 'b': s += '\b'; break;
                case 'f': s += '\f'; break;
                case 'n': s += '\n'; break;
                case 'r': s += '\r'; break;
                case 't': s += '\t'; break;
                case 'u': {
                    unsigned cp = hex4(esc);
                    if (cp >= 0xDC00 && cp <= 0xDFFF) {
                        fail(static_cast<std::size_t>(esc - begin_), "\\u escape of a lone low surrogate");
                    }
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        const char* low = p_;
                        if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') {
                            fail(static_cast<std::size_t>(esc - begin_),
                                 "\\u escape of a high surrogate not followed by a \\u escape of a low one");
                        }
                        p_ += 2;
                        const unsigned lo = hex4(low);
                        if (lo < 0xDC00 || lo > 0xDFFF) {
                            fail(static_cast<std::size_t>(esc - begin_),
                                 "\\u escape of a high surrogate not followed by a \\u escape of a low one");
                        }
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    append_utf8(s, cp);
                    break;
                }
                default:
                    p_ = esc + 1;  // here() names the byte after the backslash
                    fail(static_cast<std::size_t>(esc - begin_), "invalid escape: a backslash before " + here() +
                         " in a string (valid: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
            }
        }
    }

    Value number() {
        const char* start = p_;
        const bool negative = *p_ == '-';
        if (negative) ++p_;
        auto digits = [&] {
            const char* d = p_;
            while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
            return static_cast<std::size_t>(p_ - d);
        };
        const char* int_begin = p_;
        const std::size_t int_digits = digits();
        if (int_digits == 0) fail(offset(), "expected a digit after '-', found " + here());
        if (int_digits > 1 && *int_begin == '0') fail(static_cast<std::size_t>(int_begin - begin_), "a number with a leading zero");
        bool integer = true;
        const char* frac_begin = nullptr;
        std::size_t frac_digits = 0;
        if (p_ != end_ && *p_ == '.') {
            integer = false;
            ++p_;
            frac_begin = p_;
            frac_digits = digits();
            if (frac_digits == 0) fail(offset(), "expected a digit after '.', found " + here());
        }
        long long exponent = 0;
        if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
            integer = false;
            ++p_;
            bool exp_negative = false;
            if (p_ != end_ && (*p_ == '+' || *p_ == '-')) exp_negative = *p_++ == '-';
            const char* exp_begin = p_;
            if (digits() == 0) fail(offset(), "expected a digit in the exponent, found " + here());
            for (const char* d = exp_begin; d != p_; ++d) exponent = std::min(exponent * 10 + (*d - '0'), 1000000000LL);
            if (exp_negative) exponent = -exponent;
        }
        Value v;
        v.type_ = Type::number;
        if (integer) {
            std::from_chars_result r;
            if (negative) {
                r = std::from_chars(start, p_, v.num_.i);
                v.kind_ = Value::Kind::signed_integer;  // "-0" too, as nlohmann reads it
            } else {
                r = std::from_chars(start, p_, v.num_.u);
                v.kind_ = Value::Kind::unsigned_integer;
            }
            if (r.ec == std::errc() && r.ptr == p_) return v;
            // Too large for 64 bits: read as a double below.
        }
        v.kind_ = Value::Kind::floating;
        const auto r = std::from_chars(start, p_, v.num_.d);
        if (r.ec == std::errc::result_out_of_range) {
            // Overflow or underflow: the decimal exponent of the first significant digit says which.
            long long magnitude = 0;
            bool found = false;
            for (std::size_t k = 0; k < int_digits && !found; ++k) {
                if (int_begin[k] != '0') {
                    magnitude = static_cast<long long>(int_digits - k);
                    found = true;
                }
            }
            for (std::size_t k = 0; k < frac_digits && !found; ++k) {
                if (frac_begin[k] != '0') {
                    magnitude = -static_cast<long long>(k);
                    found = true;
                }
            }
            if (magnitude + exponent > 0) {
                fail(static_cast<std::size_t>(start - begin_),
                     "number " + std::string(start, static_cast<std::size_t>(p_ - start)) + " is too large for a double");
            }
            v.num_.d = negative ? -0.0 : 0.0;
        } else if (r.ec != std::errc() || r.ptr != p_) {
            fail(static_cast<std::size_t>(start - begin_), "unreadable number");
        }
        return v;
    }

    const char* begin_;
    const char* p_;
    const char* end_;
    Limits limits_;
    std::size_t values_ = 0;
};

/// Parses the JSON document in [begin, end). Throws FormatError ("JSON: byte N: what") for
/// anything that is not exactly one valid JSON value (see the top of this file).
inline Value parse(const char* begin, const char* end, const Limits& limits = {}) {
    return Parser(begin, end, limits).document();
}
inline Value parse(std::string_view text, const Limits& limits = {}) {
    return parse(text.data(), text.data() + text.size(), limits);
}

}  // namespace json
}  // namespace altclip
