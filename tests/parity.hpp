// Comparing C++ outputs with reference values produced by tools/ scripts.
#pragma once

#include <algorithm>
#include <array>
#include <cstdio>
#include <memory>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <altclip/container.hpp>

namespace altclip_test {

/// Runs a shell command; its stdout, and its wait status in `status`.
inline std::string run(const std::string& cmd, int& status) {
    std::string out;
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
    REQUIRE(pipe != nullptr);
    std::array<char, 4096> buf{};
    std::size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), pipe.get())) > 0) out.append(buf.data(), n);
    status = pclose(pipe.release());
    return out;
}

inline std::string quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

inline std::string data_path(const std::string& rel) { return std::string(ALTCLIP_TEST_DATA) + "/" + rel; }

/// The whole file as bytes (empty if it cannot be read).
inline std::string read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

struct Diff {
    double max_abs = 0;      // largest |actual - expected|
    double scale = 0;        // largest |expected|
    std::size_t worst = 0;   // flat index of max_abs
    double rel() const { return scale > 0 ? max_abs / scale : max_abs; }
};

inline Diff compare(const float* actual, const std::vector<float>& expected) {
    Diff d;
    for (std::size_t i = 0; i < expected.size(); ++i) {
        const double e = std::fabs(double(actual[i]) - double(expected[i]));
        if (!(e <= d.max_abs)) {  // also catches NaN
            d.max_abs = std::isnan(e) ? INFINITY : e;
            d.worst = i;
        }
        d.scale = std::max(d.scale, std::fabs(double(expected[i])));
    }
    return d;
}

inline std::string index_str(std::size_t flat, const std::vector<std::int64_t>& shape) {
    std::vector<std::int64_t> idx(shape.size());
    for (std::size_t k = shape.size(); k-- > 0;) {
        idx[k] = static_cast<std::int64_t>(flat % static_cast<std::size_t>(shape[k]));
        flat /= static_cast<std::size_t>(shape[k]);
    }
    std::string s = "[";
    for (std::size_t k = 0; k < idx.size(); ++k) s += (k ? ", " : "") + std::to_string(idx[k]);
    return s + "]";
}

/// Checks actual against the reference tensor `name` of `ref`: relative error
/// max|a - e| / max|e| must be below `rel_tol`. On failure prints the worst element.
inline void check_close(const altclip::Container& ref, const std::string& name, const float* actual,
                        std::size_t count, double rel_tol) {
    const auto& t = ref.tensor(name);
    const auto expected = t.to_f32();
    INFO(name << ": " << count << " values, reference " << t.shape_str());
    REQUIRE(count == expected.size());
    const Diff d = compare(actual, expected);
    INFO(name << ": max abs diff " << d.max_abs << " at " << index_str(d.worst, t.shape) << " (got "
              << actual[d.worst] << ", expected " << expected[d.worst] << "), reference max |x| " << d.scale
              << ", relative " << d.rel() << ", tolerance " << rel_tol);
    CHECK(d.rel() < rel_tol);
}

}  // namespace altclip_test
