// Small helpers shared by the example programs: option parsing and error reporting.
// (Programs print; the library never does.)
#pragma once

#include <cstdlib>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <altclip/isa.hpp>
#include <altclip/kernels/cpu.hpp>
#include <altclip/limits.hpp>
#include <altclip/options.hpp>

namespace cli {

/// Options of the form --name VALUE (repeatable) and --flag.
struct Args {
    std::map<std::string, std::vector<std::string>> values;
    std::set<std::string> flags;

    const std::vector<std::string>& all(const std::string& name) const {
        static const std::vector<std::string> none;
        auto it = values.find(name);
        return it == values.end() ? none : it->second;
    }
    std::string one(const std::string& name, const std::string& fallback = "") const {
        const auto& v = all(name);
        return v.empty() ? fallback : v.back();
    }
    bool has(const std::string& flag) const { return flags.count(flag) != 0; }
};

/// `s` safe to print on a terminal: control characters (C0, DEL, C1) and bytes that are not
/// UTF-8 become \xNN escapes; other text (any language) is kept. Names from outside (paths,
/// labels, library messages quoting them) go through this before they are printed.
inline std::string printable(std::string_view s) {
    std::string out;
    const auto hex = [&](unsigned c) {
        const char* digits = "0123456789ABCDEF";
        out += "\\x";
        out += digits[c >> 4];
        out += digits[c & 15];
    };
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        for (std::size_t k = 1; k < len; ++k) {
            if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) len = 0;
        }
        if (len == 0 || (len == 1 && (c < 0x20 || c == 0x7F)) ||
            (len == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0)) {  // C1 controls U+0080..U+009F
            hex(c);
            ++i;
        } else {
            out.append(s.substr(i, len));
            i += len;
        }
    }
    return out;
}

[[noreturn]] inline void fail(const std::string& program, const std::string& msg, int code = 2) {
    std::cerr << program << ": error: " << msg << "\n";
    std::exit(code);
}

/// Parses argv against the known options (taking a value) and flags; --help prints usage.
inline Args parse(int argc, char** argv, const std::string& program, const std::set<std::string>& options,
                  const std::set<std::string>& flags, const std::string& usage) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            std::cout << usage;
            std::exit(0);
        }
        if (arg.rfind("--", 0) != 0) fail(program, "unexpected argument '" + printable(arg) + "'\n" + usage);
        const std::string name = arg.substr(2);
        if (flags.count(name)) {
            a.flags.insert(name);
        } else if (options.count(name)) {
            if (i + 1 >= argc) fail(program, "option --" + name + " needs a value\n" + usage);
            a.values[name].push_back(argv[++i]);
        } else {
            fail(program, "unknown option '" + printable(arg) + "'\n" + usage);
        }
    }
    return a;
}

inline long parse_positive(const std::string& program, const std::string& name, const std::string& s) {
    char* end = nullptr;
    const long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || v <= 0) fail(program, "--" + name + " takes a positive integer, got '" + printable(s) + "'");
    return v;
}

/// ModelOptions from --threads N, --exact and --max-isa LEVEL.
inline altclip::ModelOptions model_options(const Args& a, const std::string& program) {
    altclip::ModelOptions o;
    if (!a.one("threads").empty()) {
        const long n = parse_positive(program, "threads", a.one("threads"));
        if (n > altclip::kMaxThreads) {
            fail(program, "--threads " + std::to_string(n) + " is more than the " + std::to_string(altclip::kMaxThreads) +
                              " threads a model may use; this machine has " +
                              std::to_string(std::thread::hardware_concurrency()) +
                              " cores (leave --threads out to use them all)");
        }
        o.num_threads = static_cast<int>(n);
    }
    o.exact = a.has("exact");
    if (!a.one("max-isa").empty()) {
        try {
            o.max_isa = altclip::kernels::parse_isa(a.one("max-isa"), "--max-isa");
        } catch (const altclip::Error& e) {
            fail(program, e.what());
        }
    }
    return o;
}

/// --verbose: which CPU this is and which kernels the loaded model runs, on stderr.
template <class Model>
inline void describe(const Model& model, const Args& a, const std::string& program) {
    if (!a.has("verbose")) return;
    std::cerr << program << ": CPU: " << altclip::cpu_info().describe() << "\n"
              << program << ": model: " << model.num_threads() << " threads, kernels " << altclip::isa_name(model.isa())
              << (altclip::cpu_info().bf16_dot_pays(model.isa()) ? " (bf16 files: bfloat16 dot products; q8: int8 dot products)"
                  : model.isa() >= altclip::Isa::avx512_vnni ? " (bf16 files widened to float32; q8: int8 dot products)"
                  : model.isa() >= altclip::Isa::avx2 ? " (bf16 and q8 files widened to float32)"
                                                      : " (Eigen; bf16 and q8 files widened to float32)")
              << (a.has("exact") ? "; --exact: float32 math" : "") << "\n";
    std::cerr << program << ": matrix products: " << model.matmul_engine() << "\n";
}

}  // namespace cli
