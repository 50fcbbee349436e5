// Element types of the model file and a non-owning view of one stored tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "errors.hpp"
#include "kernels/weight_matrix.hpp"

namespace altclip {

enum class DType { f32, f16, bf16, i64, i32, u8, i8 };

inline const char* dtype_name(DType t) {
    switch (t) {
        case DType::f32: return "f32";
        case DType::f16: return "f16";
        case DType::bf16: return "bf16";
        case DType::i64: return "i64";
        case DType::i32: return "i32";
        case DType::u8: return "u8";
        case DType::i8: return "i8";
    }
    return "?";
}

inline std::size_t dtype_size(DType t) {
    switch (t) {
        case DType::f32: return 4;
        case DType::f16: return 2;
        case DType::bf16: return 2;
        case DType::i64: return 8;
        case DType::i32: return 4;
        case DType::u8: return 1;
        case DType::i8: return 1;
    }
    return 0;
}

/// Parses a dtype name of docs/format.md; returns false for an unknown name.
inline bool parse_dtype(const std::string& s, DType& out) {
    static const struct { const char* name; DType t; } table[] = {
        {"f32", DType::f32}, {"f16", DType::f16}, {"bf16", DType::bf16},
        {"i64", DType::i64}, {"i32", DType::i32}, {"u8", DType::u8}, {"i8", DType::i8}};
    for (const auto& e : table) {
        if (s == e.name) {
            out = e.t;
            return true;
        }
    }
    return false;
}

inline bool is_float(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }

/// IEEE binary16 bits -> float (exact).
inline float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    std::uint32_t exp = (h >> 10) & 0x1Fu;
    std::uint32_t mant = h & 0x3FFu;
    std::uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            exp = 127 - 15 + 1;
            while ((mant & 0x400u) == 0) {
                mant <<= 1;
                --exp;
            }
            mant &= 0x3FFu;
            bits = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

/// bfloat16 bits -> float (exact).
inline float bf16_to_float(std::uint16_t b) {
    const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

/// The "panels" layout of a weight matrix (docs/format.md): the layout the GEMM kernels
/// multiply with, stored so at conversion so that no call repacks the weights. The matrix is
/// [rows, cols] with rows = shape[0] and cols the product of the other dimensions; its values
/// are grouped into 32-bit units of G = 4 / dtype size consecutive values of a row (f32: 1,
/// bf16: 2, the lower k first) and stored as [ceil(rows / 32)][ceil(cols / G)][32] units:
/// for each block of 32 rows, unit by unit along the row, the 32 rows' units side by side.
/// Rows past `rows` and values past `cols` are zero.
namespace panel_layout {
inline constexpr std::int64_t kRows = kernels::kPanelRows;
/// Whether a dtype can be stored in panels (f32 and bf16).
inline bool allowed(DType t) { return t == DType::f32 || t == DType::bf16; }
inline std::int64_t group(DType t) { return 4 / static_cast<std::int64_t>(dtype_size(t)); }
inline std::int64_t row_blocks(std::int64_t rows) { return rows / kRows + (rows % kRows != 0); }  // no overflow
/// Byte offset of value (r, c).
inline std::size_t offset(std::int64_t r, std::int64_t c, std::int64_t cols, DType t) {
    const std::int64_t unit = kernels::panel_unit(r, c, cols, group(t));
    return static_cast<std::size_t>(unit * 4 + (c % group(t)) * static_cast<std::int64_t>(dtype_size(t)));
}
}  // namespace panel_layout

/// A tensor as stored in a mapped file: dtype, shape, and a pointer into the mapping.
/// Valid as long as the file object that produced it is alive.
struct TensorView {
    std::string name;
    DType dtype = DType::f32;
    std::vector<std::int64_t> shape;
    const void* data = nullptr;
    std::size_t nbytes = 0;
    bool panels = false;  // stored in the panel layout (a weight matrix), else row-major

    /// Rows and columns of the matrix a panel-layout tensor holds (shape[0], the rest).
    std::int64_t matrix_rows() const { return shape.empty() ? 1 : shape[0]; }
    std::int64_t matrix_cols() const {
        std::int64_t n = 1;
        for (std::size_t i = 1; i < shape.size(); ++i) n *= shape[i];
        return n;
    }

    std::int64_t numel() const {
        std::int64_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }

    std::string shape_str() const {
        std::string s = "[";
        for (std::size_t i = 0; i < shape.size(); ++i) {
            if (i) s += ", ";
            s += std::to_string(shape[i]);
        }
        return s + "]";
    }

    /// Copies the values widened to float (f32, f16, bf16 tensors only), row-major whatever
    /// the stored layout.
    std::vector<float> to_f32() const {
        const auto n = static_cast<std::size_t>(numel());
        std::vector<float> out(n);
        const auto* p = static_cast<const unsigned char*>(data);
        if (panels) {
            const std::int64_t rows = matrix_rows(), cols = matrix_cols();
            for (std::int64_t r = 0; r < rows; ++r) {
                for (std::int64_t c = 0; c < cols; ++c) {
                    const unsigned char* q = p + panel_layout::offset(r, c, cols, dtype);
                    float& v = out[static_cast<std::size_t>(r * cols + c)];
                    if (dtype == DType::f32) {
                        std::memcpy(&v, q, 4);
                    } else {
                        std::uint16_t h;
                        std::memcpy(&h, q, 2);
                        v = bf16_to_float(h);
                    }
                }
            }
            return out;
        }
        switch (dtype) {
            case DType::f32:
                std::memcpy(out.data(), p, n * 4);
                break;
            case DType::f16:
                for (std::size_t i = 0; i < n; ++i) {
                    std::uint16_t h;
                    std::memcpy(&h, p + 2 * i, 2);
                    out[i] = half_to_float(h);
                }
                break;
            case DType::bf16:
                for (std::size_t i = 0; i < n; ++i) {
                    std::uint16_t h;
                    std::memcpy(&h, p + 2 * i, 2);
                    out[i] = bf16_to_float(h);
                }
                break;
            default:
                throw FormatError("tensor " + name + " has dtype " + dtype_name(dtype) +
                                  ", expected a float type (f32, f16 or bf16)");
        }
        return out;
    }

    /// Copies integer values (i64, i32, u8) widened to int64.
    std::vector<std::int64_t> to_i64() const {
        const auto n = static_cast<std::size_t>(numel());
        std::vector<std::int64_t> out(n);
        const auto* p = static_cast<const unsigned char*>(data);
        for (std::size_t i = 0; i < n; ++i) {
            switch (dtype) {
                case DType::i64: std::memcpy(&out[i], p + 8 * i, 8); break;
                case DType::i32: { std::int32_t v; std::memcpy(&v, p + 4 * i, 4); out[i] = v; break; }
                case DType::u8: out[i] = p[i]; break;
                case DType::i8: out[i] = static_cast<std::int8_t>(p[i]); break;
                default:
                    throw FormatError("tensor " + name + " has dtype " + dtype_name(dtype) +
                                      ", expected an integer type (i64, i32, u8 or i8)");
            }
        }
        return out;
    }
};

/// A dense row-major float32 tensor that owns its data: model inputs and outputs.
struct Tensor {
    std::vector<std::int64_t> shape;
    std::vector<float> data;

    Tensor() = default;
    explicit Tensor(std::vector<std::int64_t> s) : shape(std::move(s)), data(static_cast<std::size_t>(count(shape))) {}
    Tensor(std::vector<std::int64_t> s, std::vector<float> d) : shape(std::move(s)), data(std::move(d)) {
        if (static_cast<std::int64_t>(data.size()) != count(shape)) {
            throw InvalidArgument("Tensor: " + std::to_string(data.size()) + " values do not fill its shape");
        }
    }

    static std::int64_t count(const std::vector<std::int64_t>& s) {
        std::int64_t n = 1;
        for (auto d : s) n *= d;
        return n;
    }
    std::int64_t numel() const { return static_cast<std::int64_t>(data.size()); }
    /// Size of dimension i; InvalidArgument if the tensor has fewer dimensions.
    std::int64_t dim(std::size_t i) const {
        if (i >= shape.size()) {
            throw InvalidArgument("Tensor: dimension " + std::to_string(i) + " asked of a tensor of rank " +
                                  std::to_string(shape.size()) + "; pass a tensor of the documented shape");
        }
        return shape[i];
    }
    float* ptr() { return data.data(); }
    const float* ptr() const { return data.data(); }
    /// Pointer to the start of index i along the first dimension.
    float* slice(std::int64_t i) { return data.data() + i * (numel() / dim(0)); }
    const float* slice(std::int64_t i) const { return data.data() + i * (numel() / dim(0)); }
};

}  // namespace altclip
