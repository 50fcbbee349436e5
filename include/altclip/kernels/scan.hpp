// The kernels of the exact search scan: dot products of one query (float32) with many
// stored unit vectors, as float32 or as IEEE half floats (binary16, what a search index
// stores to halve its reads). Memory-bound: each stored value is read once, so the vector
// kernels (lanes.inc: dot_rows) widen halves in registers rather than through a buffer.
// Every level sums in the same order (16 lanes, then a fixed tree, then the tail), so the
// scores differ between levels only by the rounding of fused multiply-adds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../format/dtype.hpp"
#include "../isa.hpp"
#include "cpu.hpp"
#include "lanes_avx2.hpp"
#include "lanes_avx512.hpp"

namespace altclip::kernels::scan {

inline float to_float(float v) { return v; }
inline float to_float(std::uint16_t h) { return half_to_float(h); }

/// out[r] = dot(m[r, :], q) for rows of float32 or of IEEE half floats (T = std::uint16_t),
/// with the kernels `isa` allows; below Isa::avx2 the portable twin of lanes.inc's
/// dot_rows: the same lanes and order, in scalar code.
template <class T>
inline void dot_rows(const T* m, std::size_t rows, std::size_t dim, const float* q, float* out, Isa isa) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, std::uint16_t>, "float32 or half-float rows");
#if ALTCLIP_X86
    if (isa >= Isa::avx512) return v512::scan_rows(m, rows, dim, q, out);
    if (isa >= Isa::avx2) return v256::scan_rows(m, rows, dim, q, out);
#else
    (void)isa;
#endif
    const std::size_t full = dim / 16 * 16;
    for (std::size_t r = 0; r < rows; ++r) {
        const T* a = m + r * dim;
        float lanes[16] = {};
        for (std::size_t i = 0; i < full; i += 16)
            for (int l = 0; l < 16; ++l) lanes[l] += q[i + l] * to_float(a[i + l]);
        float tail = 0;
        for (std::size_t i = full; i < dim; ++i) tail += q[i] * to_float(a[i]);
        for (int w = 8; w >= 1; w /= 2)
            for (int i = 0; i < w; ++i) lanes[i] += lanes[i + w];
        out[r] = lanes[0] + tail;
    }
}

}  // namespace altclip::kernels::scan
