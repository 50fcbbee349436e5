// A non-owning view of one tensor stored in a model file (its element types: format/dtype.hpp,
// its layouts: format/layout.hpp), and Tensor, the models' inputs and outputs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "errors.hpp"
#include "format/dtype.hpp"
#include "format/layout.hpp"

namespace altclip {

/// A tensor as stored in a mapped file: dtype, shape, and a pointer into the mapping.
/// Valid as long as the file object that produced it is alive.
struct TensorView {
    std::string name;
    DType dtype = DType::f32;
    std::vector<std::int64_t> shape;
    const void* data = nullptr;
    std::size_t nbytes = 0;
    bool panels = false;  // stored in the panel layout (a weight matrix), else row-major
    std::int64_t panel_rows = 0;  // rows per panel when `panels` (format/layout.hpp: 64, or 32 in version 2 files)

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
                    const unsigned char* q = p + panel_layout::offset(r, c, cols, dtype, panel_rows);
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
        const auto widen16 = [&](float (*to_float)(std::uint16_t)) {
            for (std::size_t i = 0; i < n; ++i) {
                std::uint16_t h;
                std::memcpy(&h, p + 2 * i, 2);
                out[i] = to_float(h);
            }
        };
        switch (dtype) {
            case DType::f32:
                std::memcpy(out.data(), p, n * 4);
                break;
            case DType::f16:
                widen16(half_to_float);
                break;
            case DType::bf16:
                widen16(bf16_to_float);
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
