// The kernels of Isa::avx2 (AVX2 + FMA: most laptops and older servers): float32 math on
// the packed layout of gemm_packed.hpp (x in slivers of MR rows, W in panels of NR columns:
// when the file stores them so, read in place for a short input and copied 16 KB at a time
// for a long one, kCopySlivers), a 3 x 32 micro-kernel run four times over each MR x NR tile
// (12 accumulators of 8 lanes fit AVX2's 16 registers; the 3-row blocks past x's last row
// skipped), the tasks and tile sums laid out as packed::run lays them, an MLP's activation
// and a residual applied as the tile is written out (or the tile written into the next
// product's packed x: linear_chain), x packed once for a layer's products and normalized as it
// is packed (linear_many), the attention (its softmax down packed columns), and LayerNorm and
// GELU (lanes.inc's exp and GELU). bf16 and int8 weights are widened to float32
// units as panels are packed, eight rows by eight values at a time; bf16 panels of a file, for
// a short input, in registers as the micro-kernel reads them in place. A q8 file's int8 rows,
// for a short input (a text), are multiplied row by row instead (dot_q8: dot products, W
// widened as it is read).
// Compiled in an AVX2 target region (cpu.hpp); entered only at Isa::avx2 and above.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "activation.hpp"
#include "cpu.hpp"
#include "gemm_packed.hpp"
#include "lanes_avx2.hpp"
#include "thread_pool.hpp"
#include "weight_matrix.hpp"

#if ALTCLIP_X86
ALTCLIP_AVX2_BEGIN
namespace altclip::kernels::avx2 {

using packed::KU;
using packed::MR;
using packed::NR;

/// Eight float32 vectors (rows of an 8 x 8 block) transposed: dst[c * ld + r] = v[r][c].
inline void transpose8_store(__m256 v[8], std::uint32_t* dst, std::int64_t ld) {
    __m256 t[8], q[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        q[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        q[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        q[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        q[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    float* d = reinterpret_cast<float*>(dst);
    for (int i = 0; i < 4; ++i) {
        _mm256_storeu_ps(d + i * ld, _mm256_permute2f128_ps(q[i], q[i + 4], 0x20));
        _mm256_storeu_ps(d + (i + 4) * ld, _mm256_permute2f128_ps(q[i], q[i + 4], 0x31));
    }
}

/// A row's LayerNorm statistics, as float32: the mean and 1 / sqrt(variance + eps), both
/// taken in double, eight lanes (two registers of four) in a fixed order, then the tail in order.
struct RowStats {
    float mean = 0, rstd = 0;
};
inline RowStats row_stats(const float* xr, std::int64_t n, float eps) {
    const std::int64_t full = n / 8 * 8;
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (std::int64_t i = 0; i < full; i += 8) {
        const __m256 v = _mm256_loadu_ps(xr + i);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    alignas(32) double l[4];
    _mm256_store_pd(l, _mm256_add_pd(s0, s1));
    double sum = (l[0] + l[1]) + (l[2] + l[3]);
    for (std::int64_t i = full; i < n; ++i) sum += xr[i];
    const double mean = sum / static_cast<double>(n);
    const __m256d vm = _mm256_set1_pd(mean);
    s0 = s1 = _mm256_setzero_pd();
    for (std::int64_t i = 0; i < full; i += 8) {
        const __m256 v = _mm256_loadu_ps(xr + i);
        const __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), vm);
        const __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), vm);
        s0 = _mm256_fmadd_pd(d0, d0, s0);
        s1 = _mm256_fmadd_pd(d1, d1, s1);
    }
    _mm256_store_pd(l, _mm256_add_pd(s0, s1));
    double sq = (l[0] + l[1]) + (l[2] + l[3]);
    for (std::int64_t i = full; i < n; ++i) {
        const double d = xr[i] - mean;
        sq += d * d;
    }
    const double rstd = 1.0 / std::sqrt(sq / static_cast<double>(n) + static_cast<double>(eps));
    return {static_cast<float>(mean), static_cast<float>(rstd)};
}
/// Eight values normalized: (v - mean) * rstd, then times gamma plus beta in one rounding.
ALTCLIP_KERNEL_INLINE __m256 normalize8(__m256 v, __m256 mean, __m256 rstd, const float* gamma, const float* beta) {
    return _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(v, mean), rstd), _mm256_loadu_ps(gamma), _mm256_loadu_ps(beta));
}
/// One value normalized: the same operations as normalize8's lanes.
inline float normalize1(float v, RowStats st, float gamma, float beta) {
    return std::fma((v - st.mean) * st.rstd, gamma, beta);
}

/// Eight units of a 12-row sliver written as pack_x lays them out (dst[unit * MR + row]), row i's
/// eight values given by row(i): rows 0-7 as an 8 x 8 transpose, then rows 8-11 as two 4 x 4
/// ones (all twelve loaded first spill registers).
template <class Row>
ALTCLIP_KERNEL_INLINE void store_sliver_units8(Row row, std::uint32_t* dst) {
    static_assert(MR == 12, "rows 0-7 and 8-11 of a sliver");
    __m256 v[8];
    for (int i = 0; i < 8; ++i) v[i] = row(i);
    transpose8_store(v, dst, MR);
    __m128 lo[4], hi[4];
    for (int i = 0; i < 4; ++i) {
        const __m256 r = row(8 + i);
        lo[i] = _mm256_castps256_ps128(r);
        hi[i] = _mm256_extractf128_ps(r, 1);
    }
    _MM_TRANSPOSE4_PS(lo[0], lo[1], lo[2], lo[3]);
    _MM_TRANSPOSE4_PS(hi[0], hi[1], hi[2], hi[3]);
    float* d = reinterpret_cast<float*>(dst + 8);
    for (int c = 0; c < 4; ++c) {
        _mm_storeu_ps(d + c * MR, lo[c]);
        _mm_storeu_ps(d + (c + 4) * MR, hi[c]);
    }
}

/// The packed layout of an [n, k] x in `ws` (grown to fit): [block][sliver][unit][MR].
inline packed::PackedX packed_shape(std::int64_t n, std::int64_t k, PackedXBuffers& ws) {
    packed::PackedX p;
    p.n = n;
    p.ku = k;
    p.slivers = (n + MR - 1) / MR;
    p.nblocks = packed::blocks(k);
    const std::int64_t size = p.nblocks * p.block_stride();
    if (static_cast<std::int64_t>(ws.units.size()) < size) ws.units.resize(static_cast<std::size_t>(size));
    p.data = ws.units.data();
    return p;
}

/// x (float32, row stride ldx) as float32 units in slivers: [block][sliver][unit][MR]. A
/// sliver goes eight units at a time (store_sliver_units8; the rows past x's last zero), the
/// units past the last whole 8 value by value. With `norm`, layer_norm(x) (the
/// numbers of layer_norm_rows) is what is packed: each sliver's rows' statistics first, then
/// the values normalized as they are read, with no pass writing the normalized rows.
inline packed::PackedX pack_x(const float* x, std::int64_t n, std::int64_t k, std::int64_t ldx, PackedXBuffers& ws,
                              ThreadPool* pool, const RowNorm* norm = nullptr) {
    const packed::PackedX p = packed_shape(n, k, ws);
    std::uint32_t* const data = ws.units.data();
    auto sliver = [&](std::int64_t s, auto normed) {
        constexpr bool kNorm = decltype(normed)::value;
        RowStats st[MR];
        __m256 fm[MR], fr[MR];
        if constexpr (kNorm)
            for (std::int64_t i = 0; i < MR && s * MR + i < n; ++i) {
                st[i] = row_stats(x + (s * MR + i) * ldx, k, norm->eps);
                fm[i] = _mm256_set1_ps(st[i].mean);
                fr[i] = _mm256_set1_ps(st[i].rstd);
            }
        const std::int64_t rows = std::min<std::int64_t>(MR, n - s * MR);
        for (std::int64_t b = 0; b < p.nblocks; ++b) {
            std::uint32_t* dst = data + b * p.block_stride() + s * p.sliver_stride();
            const std::int64_t u0 = b * KU, kus = std::min(k, u0 + KU) - u0, kus8 = kus / 8 * 8;
            const float* xs = x + s * MR * ldx + u0;
            auto row = [&](int i, std::int64_t u) {
                const __m256 v = _mm256_loadu_ps(xs + i * ldx + u);
                if constexpr (kNorm)
                    return normalize8(v, fm[i], fr[i], norm->gamma + u0 + u, norm->beta + u0 + u);
                else
                    return v;
            };
            const __m256 zero = _mm256_setzero_ps();
            for (std::int64_t u = 0; u < kus8; u += 8) {
                if (rows == MR)
                    store_sliver_units8([&](int i) { return row(i, u); }, dst + u * MR);
                else  // the last sliver: the rows past x's last zero (vectorized too: the image's 257th
                      // row's sliver value by value took ~10% of its attention)
                    store_sliver_units8([&](int i) { return i < rows ? row(i, u) : zero; }, dst + u * MR);
            }
            for (int i = 0; i < MR; ++i) {
                if (i >= rows) {
                    for (std::int64_t u = kus8; u < kus; ++u) dst[u * MR + i] = 0;
                    continue;
                }
                const float* xr = xs + i * ldx;
                for (std::int64_t u = kus8; u < kus; ++u) {
                    float v = xr[u];
                    if constexpr (kNorm) v = normalize1(v, st[i], norm->gamma[u0 + u], norm->beta[u0 + u]);
                    std::memcpy(dst + u * MR + i, &v, 4);
                }
            }
        }
    };
    parallel_chunks(pool, p.slivers, 1, [&](std::int64_t s0, std::int64_t s1) {
        for (std::int64_t s = s0; s < s1; ++s) {
            if (norm != nullptr)
                sliver(s, std::true_type{});
            else
                sliver(s, std::false_type{});
        }
    });
    return p;
}

/// The cache lines of n bytes from p, prefetched.
inline void prefetch_bytes(const char* p, std::int64_t n) {
    for (std::int64_t i = 0; i < n; i += 64) _mm_prefetch(p + i, _MM_HINT_T0);
}
/// The cache lines of n floats from p, prefetched.
inline void prefetch_row(const float* p, std::int64_t n) { prefetch_bytes(reinterpret_cast<const char*>(p), n * 4); }

/// Eight values of W's row j from column c as float32, as unit_of makes them (row-major sources).
template <packed::Source K>
inline __m256 row8(const packed::PanelSource& w, std::int64_t j, std::int64_t c) {
    if constexpr (K == packed::Source::bf16_widen) {
        const auto* p = static_cast<const std::uint16_t*>(w.data) + j * w.stride() + c;
        const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
    } else if constexpr (K == packed::Source::i8_widen) {
        const auto* p = static_cast<const std::int8_t*>(w.data) + j * w.stride() + c;
        const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
        return _mm256_mul_ps(f, _mm256_set1_ps(w.scale[j]));
    } else {
        static_assert(K == packed::Source::f32, "a row-major source of values");
        return _mm256_loadu_ps(static_cast<const float*>(w.data) + j * w.stride() + c);
    }
}

/// pack_panel's whole 8 x 8 blocks of a row-major W of kind K (rows [j, j + nr8), units
/// [u0, u0 + kus8)), widened and transposed in registers; the next eight rows prefetched as
/// each eight are read (rows a stride apart, keys 12 KB apart in the attention: the hardware
/// prefetchers stop at each 4 KB page), up to row `rows`.
template <packed::Source K>
inline void pack_blocks(const packed::PanelSource& w, std::int64_t j, int nr8, std::int64_t u0, std::int64_t kus8,
                        std::int64_t kus, std::uint32_t* panel, std::int64_t rows) {
    constexpr std::int64_t bytes = K == packed::Source::f32 ? 4 : K == packed::Source::bf16_widen ? 2 : 1;
    for (int r = 0; r < nr8; r += 8) {
        for (std::int64_t i = j + r + 8; i < std::min(rows, j + r + 16); ++i)
            prefetch_bytes(static_cast<const char*>(w.data) + (i * w.stride() + u0) * bytes, kus * bytes);
        for (std::int64_t u = 0; u < kus8; u += 8) {
            __m256 v[8];
            for (int i = 0; i < 8; ++i) v[i] = row8<K>(w, j + r + i, u0 + u);
            transpose8_store(v, panel + u * NR + r, NR);
        }
    }
}

/// W rows [j, j + nr), units [u0, u0 + kus) as float32 units in panel[unit][NR] (zero past nr).
/// `rows`: W's rows, when the next panel's first rows may be prefetched as this one's last are read.
/// Whole 8 x 8 blocks of row-major W are widened and transposed in registers; bf16 panels are
/// widened a pair of unit rows at a time; what is left over goes value by value (unit_of).
inline void pack_panel(const packed::PanelSource& w, std::int64_t j, int nr, std::int64_t u0, std::int64_t kus,
                       std::uint32_t* panel, std::int64_t rows = 0) {
    rows = std::max(rows, j + nr);  // W's rows that may be prefetched: at least the panel's
    if (w.kind == packed::Source::bf16_panels_widen) {  // bfloat16 pairs in panels: halves widened
        const std::int64_t p = w.panel_rows;
        const std::uint32_t* src = packed::stored_panel(w, j, 2);
        const __m256i high = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
        std::int64_t u = 0;
        if (u0 % 2 == 0)  // u0 is a multiple of KU: pairs start on even units
            for (; u + 2 <= kus; u += 2) {
                const std::uint32_t* pair = src + ((u0 + u) / 2) * p;
                for (int q = 0; q < NR; q += 8) {
                    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pair + q));
                    _mm256_storeu_si256(reinterpret_cast<__m256i*>(panel + u * NR + q), _mm256_slli_epi32(v, 16));
                    _mm256_storeu_si256(reinterpret_cast<__m256i*>(panel + (u + 1) * NR + q), _mm256_and_si256(v, high));
                }
            }
        for (; u < kus; ++u) {
            const std::int64_t c = u0 + u;
            const std::uint32_t* pair = src + (c / 2) * p;
            for (int jj = 0; jj < NR; ++jj) panel[u * NR + jj] = c % 2 == 0 ? pair[jj] << 16 : pair[jj] & 0xFFFF0000u;
        }
        return;
    }
    const bool vector_rows = w.kind == packed::Source::f32 || w.kind == packed::Source::bf16_widen ||
                             w.kind == packed::Source::i8_widen;
    const std::int64_t kus8 = vector_rows ? kus / 8 * 8 : 0;
    const int nr8 = vector_rows ? nr / 8 * 8 : 0;
    if (w.kind == packed::Source::f32)
        pack_blocks<packed::Source::f32>(w, j, nr8, u0, kus8, kus, panel, rows);
    else if (w.kind == packed::Source::bf16_widen)
        pack_blocks<packed::Source::bf16_widen>(w, j, nr8, u0, kus8, kus, panel, rows);
    else if (w.kind == packed::Source::i8_widen)
        pack_blocks<packed::Source::i8_widen>(w, j, nr8, u0, kus8, kus, panel, rows);
    // The rest value by value: units past the last whole 8 for the rows done above, every unit of
    // the rows past the last whole 8; the columns past nr zero.
    for (std::int64_t u = 0; u < kus; ++u) {
        std::uint32_t* const row = panel + u * NR;
        for (int jj = u < kus8 ? nr8 : 0; jj < nr; ++jj) row[jj] = packed::unit_of(w, j + jj, u0 + u);
        std::fill(row + nr, row + NR, 0u);
    }
}

/// kus unit rows of a panel stored in place (rows `ld` units apart) copied to `panel` [unit][NR].
inline void copy_panel(const std::uint32_t* src, std::int64_t ld, std::int64_t kus, std::uint32_t* panel) {
    for (std::int64_t u = 0; u < kus; ++u)
        for (int q = 0; q < NR; q += 8)
            _mm256_store_si256(reinterpret_cast<__m256i*>(panel + u * NR + q),
                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + u * ld + q)));
}

/// W's unit rows as the micro-kernel reads them: row u's eight values from column 8 j.
/// Float32 units (a packed panel, ldb = NR, or a stored one read in place, ldb its rows).
struct F32Rows {
    const float* b;
    std::int64_t ldb;
    __m256 operator()(std::int64_t u, int j) const {
        __m256 v = _mm256_loadu_ps(b + u * ldb + 8 * j);
        // One load of the row piece for its three multiply-adds: tuned for some CPUs (GCC's
        // -march=znver3), the compiler would fold it into each of them instead, 15 loads
        // per 12 multiply-adds, more than Zen 3's two 256-bit loads a cycle feed (a
        // -march=native build ran 20-28% slower than the consumer build there).
        __asm__("" : "+x"(v));
        return v;
    }
};
/// A bf16 file's stored panel read in place: bfloat16 pairs, units 2i and 2i + 1 in the low
/// and high halves of one 32-bit value, pair rows ldb apart, each half widened in registers
/// (a shift or a mask: exactly the float32 values pack_panel makes). For a short x (under
/// kCopySlivers slivers): widening a panel to 16 KB of float32 for two slivers cost more
/// than its products (a 16-token text at bf16 slower than at f32).
struct Bf16PairRows {
    const std::uint32_t* b;
    std::int64_t ldb;
    __m256 operator()(std::int64_t u, int j) const {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + (u / 2) * ldb + 8 * j));
        return _mm256_castsi256_ps(u % 2 != 0 ? _mm256_and_si256(v, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u)))
                                              : _mm256_slli_epi32(v, 16));
    }
};

/// tile[i][c] (+)= sum over kus units of a[unit][i] * W[unit][c] for the 12 x 32 tile, W's
/// rows from `w` (F32Rows, Bf16PairRows), as four 3 x 32 register blocks: 12 accumulators,
/// three broadcasts of x held while the four 8-lane pieces of the W row stream by (16
/// registers; 7 loads per 12 multiply-adds). `accumulate`: add to the tile's sums of the
/// earlier k blocks instead of overwriting them. `rows`: x's rows in this sliver (MR but in
/// the last); the blocks past them are skipped, and the last is cut to the rows left (a
/// 16-token text's second sliver holds 4 rows: a block of 3 and one of 1, not 2 x 3: text
/// 1.04-1.09x; an image's 257th row, 1 block of 1). A row's sums are the same in a block of
/// any size (micro_block<RB>), and do not depend on where W is read from.
template <int RB, class Rows>
inline void micro_block(const float* af, Rows w, std::int64_t kus, float* tile, bool accumulate) {
    __m256 acc[RB][4];
#pragma GCC unroll 12
    for (int i = 0; i < RB * 4; ++i) acc[i / 4][i % 4] = _mm256_setzero_ps();
    for (std::int64_t u = 0; u < kus; ++u) {
        const float* ar = af + u * MR;
        __m256 a[RB];
#pragma GCC unroll 3
        for (int r = 0; r < RB; ++r) a[r] = _mm256_broadcast_ss(ar + r);
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
            const __m256 bj = w(u, j);
#pragma GCC unroll 3
            for (int r = 0; r < RB; ++r) acc[r][j] = _mm256_fmadd_ps(a[r], bj, acc[r][j]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < RB * 4; ++i) {
        float* t = tile + (i / 4) * NR + 8 * (i % 4);
        _mm256_storeu_ps(t, accumulate ? _mm256_add_ps(_mm256_loadu_ps(t), acc[i / 4][i % 4]) : acc[i / 4][i % 4]);
    }
}
template <class Rows>
inline void micro(const std::uint32_t* a, Rows w, std::int64_t kus, float* tile, bool accumulate, std::int64_t rows) {
    const float* af = reinterpret_cast<const float*>(a);
    for (int r0 = 0; r0 < rows; r0 += 3) {
        switch (std::min<std::int64_t>(3, rows - r0)) {
            case 3: micro_block<3>(af + r0, w, kus, tile + r0 * NR, accumulate); break;
            case 2: micro_block<2>(af + r0, w, kus, tile + r0 * NR, accumulate); break;
            default: micro_block<1>(af + r0, w, kus, tile + r0 * NR, accumulate); break;
        }
    }
}

/// f(t) for the activation `act`: lanes.inc's formulas, the ones ops.hpp's passes apply.
inline v256::Lanes::F activate(v256::Lanes::F t, Activation act) {
    switch (act) {
        case Activation::quick_gelu: return v256::quick_gelu(t);
        case Activation::gelu_erf: return v256::gelu(t);
        case Activation::none: break;
    }
    return t;
}

/// A finished tile's first mr rows and nr columns (rows W floats apart) into y (row stride
/// ldy): times the column's scale (nr values, or none: dot_q8's row scales), + bias (nr
/// values, or none), then `act`, 16 lanes at a time while the tile is in L1; with `add`, y +
/// that (a residual). The same operations as the product, then a pass of ops.hpp's
/// activation over y, then linear_many's pass adding it to y: the same numbers.
template <int W = NR>
inline void write_tile(const float* tile, std::int64_t mr, int nr, const float* scale, const float* bias,
                       Activation act, float* y, std::int64_t ldy, bool add = false) {
    using L = v256::Lanes;
    static_assert(W % 16 == 0, "a tile row in whole 16-lane blocks");
    alignas(32) float sc[W] = {}, b[W] = {};  // zero past nr
    if (scale != nullptr) std::copy(scale, scale + nr, sc);
    if (bias != nullptr) std::copy(bias, bias + nr, b);
    for (std::int64_t i = 0; i < mr; ++i) {
        float* yr = y + i * ldy;
        const float* tr = tile + i * W;
        for (int c = 0; c < nr; c += 16) {
            L::F t = L::load(tr + c);
            if (scale != nullptr) t = L::mul(t, L::load(sc + c));
            if (bias != nullptr) t = L::add(t, L::load(b + c));
            t = activate(t, act);
            if (nr - c >= 16) {
                if (add) t = L::add(L::load(yr + c), t);
                L::store(yr + c, t);
            } else {
                alignas(32) float part[16] = {};
                if (add) {
                    std::copy(yr + c, yr + nr, part);
                    t = L::add(L::load(part), t);
                }
                L::store(part, t);
                std::copy(part, part + (nr - c), yr + c);
            }
        }
    }
}

/// A finished tile (+ bias, then `act`: write_tile's numbers) transposed into a packed x's
/// sliver as units [j, j + nr) of it (dst: the first's, rows MR apart), the rows past mr zero.
inline void write_packed(const float* tile, std::int64_t mr, int nr, const float* bias, Activation act,
                         std::uint32_t* dst) {
    alignas(32) float rows[MR * NR];
    write_tile(tile, mr, nr, nullptr, bias, act, rows, NR);
    const __m256 zero = _mm256_setzero_ps();
    const int nr8 = nr / 8 * 8;
    for (int c = 0; c < nr8; c += 8)
        store_sliver_units8([&](int i) { return i < mr ? _mm256_load_ps(rows + i * NR + c) : zero; }, dst + c * MR);
    for (int c = nr8; c < nr; ++c)
        for (int i = 0; i < MR; ++i) {
            const float v = i < mr ? rows[i * NR + c] : 0.0f;
            std::memcpy(dst + c * MR + i, &v, 4);
        }
}

/// Slivers of x from which run copies a panel stored in place to a contiguous buffer, once per
/// k block. In place, a panel's NR columns have their unit rows panel_rows units apart (64 in
/// a model file: 256 bytes), so its 128-byte rows fall in half of L1's sets (or, rows 4 KB
/// apart, in one), which it then fills alone while the micro-kernel reads it four times per
/// tile; copied it shares L1 with x's sliver and the tile: 7% faster for 257 rows (the copy
/// amortised over 22 slivers), 5-8% slower for 16 (two), even near 6 (Zen 3).
constexpr std::int64_t kCopySlivers = 6;

/// y[n, out] (row stride ldy) = x . W^T (+ bias), W given as float32 units. As packed::run
/// (gemm_packed.hpp) does it: a task owns packed::task_cols output columns (two panels, eight
/// where x outgrows L2; packed once per k block or used in place), runs them over x's slivers
/// kSliverBlock at a time (that part of x stays in L2 while its panels pass over it), and
/// keeps its tiles' sums between k blocks in its slot's tile_sums ([sliver][panel][MR][NR],
/// contiguous: y's rows are `out` floats apart, which puts a tile's rows in one L1 set); the
/// last k block writes y (write_tile: + bias, then `act`).
/// `slots`: a KernelBuffers per slot of the pool's loop (one when pool is nullptr). `add`: y
/// += the result (a residual). `to`: instead of y, the result written as the next product's
/// packed x (an [n, out] x in `to`'s layout, packed_shape; linear_chain), each tile transposed
/// into its sliver's units while it is in L1, the rows past n zero: the values pack_x would make of y.
inline void run(const packed::PackedX& px, const packed::PanelSource& w, std::int64_t out, const float* bias, float* y,
                std::int64_t ldy, ThreadPool* pool, KernelBuffers* slots, Activation act = Activation::none,
                bool add = false, std::uint32_t* to = nullptr) {
    static_assert(KU % NR == 0, "a tile's columns are units of one block of the next product's x");
    const std::int64_t cols = packed::task_cols(px);  // two panels, or eight where x outgrows L2
    const int kPanels = static_cast<int>(cols / NR);
    constexpr std::int64_t kTile = MR * NR;
    const std::int64_t tasks = (out + cols - 1) / cols;
    const bool copy_stored = w.kind == packed::Source::panels && w.panel_rows != NR && px.slivers >= kCopySlivers;
    const bool bf16_in_place = w.kind == packed::Source::bf16_panels_widen && px.slivers < kCopySlivers;
    auto task = [&](std::int64_t t, int slot) {
        std::uint32_t* const panels = packed::aligned_at_least(slots[slot].panels, kPanels * KU * NR);
        float* const sums = packed::aligned_at_least(slots[slot].tile_sums, px.slivers * kPanels * kTile);
        const std::int64_t j0 = t * cols, j1 = std::min(out, j0 + cols);
        for (std::int64_t b = 0; b < px.nblocks; ++b) {
            const std::int64_t u0 = b * KU, kus = std::min(px.ku, u0 + KU) - u0;
            const bool last = b + 1 == px.nblocks;
            int np = 0;
            const std::uint32_t* panel_at[packed::kMaxTaskPanels];
            const std::uint32_t* stored_at[packed::kMaxTaskPanels] = {};
            std::int64_t ldb[packed::kMaxTaskPanels];
            for (std::int64_t j = j0; j < j1; j += NR, ++np) {
                std::uint32_t* const panel = panels + np * KU * NR;
                if (w.kind == packed::Source::panels) {
                    stored_at[np] = packed::stored_panel(w, j, 1) + u0 * w.panel_rows;
                    if (copy_stored) {
                        copy_panel(stored_at[np], w.panel_rows, kus, panel);
                        panel_at[np] = panel;
                        ldb[np] = NR;
                    } else {
                        panel_at[np] = stored_at[np];
                        ldb[np] = w.panel_rows;
                    }
                } else if (bf16_in_place) {  // u0, a multiple of KU, is even: a pair row's start
                    panel_at[np] = packed::stored_panel(w, j, 2) + u0 / 2 * w.panel_rows;
                    ldb[np] = w.panel_rows;
                } else {
                    avx2::pack_panel(w, j, static_cast<int>(std::min<std::int64_t>(NR, j1 - j)), u0, kus, panel);
                    panel_at[np] = panel;
                    ldb[np] = NR;
                }
            }
            // A stored panel comes from the mapped file, from memory on first use (the hardware
            // prefetchers stop at each 4 KB page). For an x of kCopySlivers slivers or more, its
            // next k block is prefetched over the micro-tiles of its first pass, a few unit rows
            // (two cache lines each) per tile: an image 2-4% faster where the panel is copied
            // (Zen 3), 3.5% where it is read in place (float32 panels of 32 rows: 754-773 ->
            // 722-749 ms; Intel Xeon with AMX; a bf16 file's panels, widened, were no faster so).
            // Not for a short text (two tiles a pass): 64 rows' prefetches at once per tile
            // filled the miss queue and made a 16-token text 10-15% slower than the hardware
            // prefetchers alone (Zen 3).
            const bool fetch_next = w.kind == packed::Source::panels && px.slivers >= kCopySlivers;
            const std::int64_t next_rows = fetch_next && !last ? std::min(px.ku, u0 + 2 * KU) - (u0 + KU) : 0;
            const std::int64_t first_pass = std::min(px.slivers, packed::kSliverBlock);
            const std::int64_t per_tile = (next_rows + first_pass - 1) / first_pass;
            for (std::int64_t s0 = 0; s0 < px.slivers; s0 += packed::kSliverBlock) {
                const std::int64_t s1 = std::min(px.slivers, s0 + packed::kSliverBlock);
                for (int p = 0; p < np; ++p) {
                    const std::int64_t j = j0 + p * NR;
                    const int nr = static_cast<int>(std::min<std::int64_t>(NR, j1 - j));
                    for (std::int64_t s = s0; s < s1; ++s) {
                        if (s0 == 0 && next_rows > 0) {  // (a stored panel: stored_at is set)
                            const std::int64_t f0 = std::min(next_rows, s * per_tile);
                            const std::int64_t f1 = std::min(next_rows, f0 + per_tile);
                            const std::int64_t lds = w.panel_rows;
                            const std::uint32_t* next = stored_at[p] + KU * lds;
                            for (std::int64_t u = f0; u < f1; ++u) {
                                _mm_prefetch(reinterpret_cast<const char*>(next + u * lds), _MM_HINT_T0);
                                _mm_prefetch(reinterpret_cast<const char*>(next + u * lds + 16), _MM_HINT_T0);
                            }
                        }
                        float* const tile = sums + (s * kPanels + p) * kTile;
                        const std::int64_t mr = std::min<std::int64_t>(MR, px.n - s * MR);
                        if (bf16_in_place)
                            micro(px.at(b, s), Bf16PairRows{panel_at[p], ldb[p]}, kus, tile, b > 0, mr);
                        else
                            micro(px.at(b, s), F32Rows{reinterpret_cast<const float*>(panel_at[p]), ldb[p]}, kus,
                                  tile, b > 0, mr);
                        if (last && to != nullptr)
                            write_packed(tile, mr, nr, bias != nullptr ? bias + j : nullptr, act,
                                         to + (j / KU) * px.slivers * KU * MR + s * KU * MR + (j % KU) * MR);
                        else if (last)
                            write_tile(tile, mr, nr, nullptr, bias != nullptr ? bias + j : nullptr, act,
                                       y + s * MR * ldy + j, ldy, add);
                    }
                }
            }
        }
    };
    parallel_for_slots(pool, tasks, task);
}

/// Rows of x from which a q8 file's int8 W is multiplied as packed panels (run), not row by
/// row (dot_q8): dot_q8 ran about 2x as fast for 16 rows, 1.1x for 96, even at 128, 0.92-0.95x
/// for 192 and 257 (the text's and the image's product shapes, 2 threads, Zen 3).
constexpr std::int64_t kQ8DotRows = 128;
/// Values of k per block of dot_q8: a group of x's rows (6 x 256 floats) stays in L1 over
/// the task's 64 rows of W, and those (64 x 256 bytes) over the groups.
constexpr std::int64_t kDotBlock = 256;
/// Rows of W of dot_q8's register block (and x's, below), and how many blocks ahead the first
/// group of x's rows prefetches W's rows (their first touch, from memory: the product 1.15x
/// faster with it, Zen 3).
constexpr int kDotW = 2, kDotX = 6, kDotAhead = 2;

/// For R rows of x (ldx apart) and C rows of int8 W (ldq apart), over kc values of k:
/// R x C accumulators of 8 lanes, W's eight values widened once per step for R rows of x,
/// each row of x loaded once for C rows of W (R = 6, C = 2: 12 accumulators, 2 W, 1 x: 15
/// registers; 8 loads and 4 widening operations per 12 multiply-adds). The accumulators
/// start from zero (`first`) or from `lanes` ([row][column][8], rows ldl floats apart), and
/// go back there, or, for the last block (`sums` not null), have their lanes added in a
/// fixed order into sums[i][c] (rows lds apart), with the values past the last whole 8.
/// `pf`: C rows of W (ldq apart) whose lines from here to kc are prefetched, or none.
template <int R, int C>
inline void dot_block(const float* x, std::int64_t ldx, const std::int8_t* q, std::int64_t ldq, std::int64_t kc,
                      bool first, float* lanes, std::int64_t ldl, float* sums, std::int64_t lds,
                      const std::int8_t* pf) {
    __m256 acc[R][C];
#pragma GCC unroll 16
    for (int i = 0; i < R * C; ++i)
        acc[i / C][i % C] = first ? _mm256_setzero_ps() : _mm256_load_ps(lanes + (i / C) * ldl + (i % C) * 8);
    const std::int64_t k8 = kc / 8 * 8;
    for (std::int64_t k = 0; k < k8; k += 8) {
        if (pf != nullptr && k % 64 == 0)
            for (int c = 0; c < C; ++c) _mm_prefetch(reinterpret_cast<const char*>(pf + c * ldq + k), _MM_HINT_T0);
        __m256 wv[C];
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c)
            wv[c] = _mm256_cvtepi32_ps(
                _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + c * ldq + k))));
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
            __m256 xv = _mm256_loadu_ps(x + i * ldx + k);
            __asm__("" : "+x"(xv));  // one load for its C multiply-adds (see F32Rows)
#pragma GCC unroll 4
            for (int c = 0; c < C; ++c) acc[i][c] = _mm256_fmadd_ps(xv, wv[c], acc[i][c]);
        }
    }
    if (sums == nullptr) {
#pragma GCC unroll 16
        for (int i = 0; i < R * C; ++i) _mm256_store_ps(lanes + (i / C) * ldl + (i % C) * 8, acc[i / C][i % C]);
        return;
    }
#pragma GCC unroll 16
    for (int ic = 0; ic < R * C; ++ic) {
        const int i = ic / C, c = ic % C;
        const __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc[i][c]), _mm256_extractf128_ps(acc[i][c], 1));
        const __m128 h2 = _mm_add_ps(h, _mm_movehl_ps(h, h));
        float s = _mm_cvtss_f32(_mm_add_ss(h2, _mm_movehdup_ps(h2)));
        for (std::int64_t k = k8; k < kc; ++k) s += x[i * ldx + k] * static_cast<float>(q[c * ldq + k]);
        sums[i * lds + c] = s;
    }
}

/// R rows of x against a task's W rows [c0, c1), kDotW at a time. `prefetch`: each block
/// prefetches the rows kDotAhead blocks on (past c1: the first rows at k_next, when > 0).
template <int R>
inline void dot_rows(const float* x, std::int64_t ldx, const std::int8_t* q, std::int64_t ldq, std::int64_t c0,
                     std::int64_t c1, std::int64_t kc, bool first, float* lanes, std::int64_t ldl, float* sums,
                     std::int64_t lds, bool prefetch, std::int64_t k_next) {
    std::int64_t c = c0;
    auto at = [&](std::int64_t cc) { return sums != nullptr ? sums + (cc - c0) : nullptr; };
    auto ahead = [&](std::int64_t cc) -> const std::int8_t* {
        if (!prefetch) return nullptr;
        std::int64_t t = cc + kDotAhead * kDotW;
        if (t < c1) return q + t * ldq;
        if (k_next <= 0) return nullptr;
        t -= c1 - c0;
        return t < c1 ? q + t * ldq + k_next : nullptr;
    };
    for (; c + kDotW <= c1; c += kDotW)
        dot_block<R, kDotW>(x, ldx, q + c * ldq, ldq, kc, first, lanes + (c - c0) * 8, ldl, at(c), lds, ahead(c));
    for (; c < c1; ++c)
        dot_block<R, 1>(x, ldx, q + c * ldq, ldq, kc, first, lanes + (c - c0) * 8, ldl, at(c), lds, ahead(c));
}

/// y[n, out] (row stride ldy) = x . W^T (+ bias), then `act`, for a short x (under
/// kQ8DotRows rows) and a q8 file's W: int8 rows (row-major, `ldq` apart) times their row
/// scale. Each output value is a dot product of x's row with W's int8 row, widened to float32
/// as it is read (the packed path's panels would widen and transpose 16 KB per k block for a
/// few slivers, their loads scattered over 32 rows: 39% of a q8 text's time). A task owns
/// kTaskCols output columns and goes over k kDotBlock values at a time, x's rows kDotX at a
/// time, its accumulators' lanes kept between blocks in the slot's tile_sums; the row scale
/// is applied at the end (write_tile), as the portable and AVX-512 paths do. The sums of a
/// value do not depend on the threads.
inline void dot_q8(const float* x, std::int64_t n, std::int64_t k, const std::int8_t* q, std::int64_t ldq,
                   const float* scale, std::int64_t out, const float* bias, float* y, std::int64_t ldy,
                   ThreadPool* pool, PackedXBuffers& xbuf, KernelBuffers* slots, Activation act) {
    constexpr std::int64_t T = packed::kTaskCols;
    constexpr std::int64_t B = kDotBlock;
    const std::int64_t tasks = (out + T - 1) / T;
    // x copied block by block, [block][row][B]: in place its rows (k floats apart, a multiple
    // of 4 KB) would fall in the same few sets of L1 and not stay there.
    const std::int64_t nblocks = (k + B - 1) / B;
    float* const xs = packed::aligned_at_least(xbuf.rows, nblocks * n * B);
    for (std::int64_t b = 0; b < nblocks; ++b) {
        const std::int64_t kc = std::min(k, (b + 1) * B) - b * B;
        for (std::int64_t i = 0; i < n; ++i) std::copy(x + i * k + b * B, x + i * k + b * B + kc, xs + (b * n + i) * B);
    }
    auto task = [&](std::int64_t t, int slot) {
        float* const lanes = packed::aligned_at_least(slots[slot].tile_sums, n * T * 8 + n * T);
        float* const sums = lanes + n * T * 8;
        const std::int64_t j0 = t * T, j1 = std::min(out, j0 + T);
        if (k == 0) std::fill(sums, sums + n * T, 0.0f);  // (no block to write them)
        for (std::int64_t k0 = 0; k0 < k; k0 += B) {
            const std::int64_t kc = std::min(k, k0 + B) - k0;
            const bool first = k0 == 0, last = k0 + B >= k;
            const std::int8_t* qb = q + k0;
            const float* xb = xs + k0 / B * n * B;
            std::int64_t r = 0;
            auto rows = [&](auto tag) {
                constexpr int R = decltype(tag)::value;
                dot_rows<R>(xb + r * B, B, qb, ldq, j0, j1, kc, first, lanes + r * T * 8, T * 8,
                            last ? sums + r * T : nullptr, T, r == 0, last ? 0 : B);
                r += R;
            };
            while (r + kDotX <= n) rows(std::integral_constant<int, kDotX>{});
            switch (n - r) {
                case 5: rows(std::integral_constant<int, 5>{}); break;
                case 4: rows(std::integral_constant<int, 4>{}); break;
                case 3: rows(std::integral_constant<int, 3>{}); break;
                case 2: rows(std::integral_constant<int, 2>{}); break;
                case 1: rows(std::integral_constant<int, 1>{}); break;
                default: break;
            }
        }
        write_tile<T>(sums, n, static_cast<int>(j1 - j0), scale + j0, bias != nullptr ? bias + j0 : nullptr, act,
                      y + j0, ldy);
    };
    parallel_for_slots(pool, tasks, task);
}

/// Where run reads a weight's W from (its type and layout): float32 panels in place, bf16
/// panels widened, row-major values widened (int8 times the row's scale) as panels are packed.
inline packed::PanelSource panel_source(const WeightMatrix& w, std::int64_t k) {
    packed::PanelSource src{packed::Source::f32, w.data, k, nullptr};
    src.panel_rows = w.panel_rows;
    switch (w.type) {
        case WeightType::f32: src.kind = w.panels ? packed::Source::panels : packed::Source::f32; break;
        case WeightType::bf16:
        case WeightType::bf16_dot:
            src.kind = w.panels ? packed::Source::bf16_panels_widen : packed::Source::bf16_widen;
            break;
        case WeightType::q8:
        case WeightType::q8_dot:
        case WeightType::q8_bf16:
            src.kind = packed::Source::i8_widen;
            src.scale = w.scale;
            break;
    }
    return src;
}

/// Whether a product of n rows with w goes row by row through dot_q8 (a q8 file's int8 rows,
/// fewer than kQ8DotRows rows of x) rather than through run.
inline bool by_rows(const WeightMatrix& w, std::int64_t n) {
    const bool q8 = w.type == WeightType::q8 || w.type == WeightType::q8_dot || w.type == WeightType::q8_bf16;
    return q8 && n < kQ8DotRows;
}

/// The slots of the pool's loop over the tasks of a product with `out` columns.
inline KernelBuffers* run_slots(ThreadPool* pool, Workspace& ws, std::int64_t out) {
    return ws.slots(slot_count(pool, (out + packed::kTaskCols - 1) / packed::kTaskCols));
}

/// kernels::linear at Isa::avx2: every weight type multiplied in float32.
ALTCLIP_KERNEL_ENTRY inline void linear(const float* x, std::int64_t n, std::int64_t k, const WeightMatrix& w,
                                        const float* bias, std::int64_t out, float* y, ThreadPool* pool,
                                        Workspace& ws, Activation act) {
    if (by_rows(w, n)) {
        dot_q8(x, n, k, static_cast<const std::int8_t*>(w.data), k, w.scale, out, bias, y, out, pool, ws.caller().x,
               run_slots(pool, ws, out), act);
        return;
    }
    run(pack_x(x, n, k, k, ws.caller().x, pool), panel_source(w, k), out, bias, y, out, pool, run_slots(pool, ws, out),
        act);
}

/// kernels::linear_many at Isa::avx2, where no product goes through dot_q8 (by_rows): x
/// packed once for them all, layer_norm(x) with `norm` (its values made as x is packed), each
/// residual added to y as its tiles are written. The same numbers as layer_norm's pass, one
/// linear() per product and the residual's pass.
ALTCLIP_KERNEL_ENTRY inline void linear_many(const float* x, std::int64_t n, std::int64_t k, const Product* products,
                                             int count, ThreadPool* pool, Workspace& ws, const RowNorm* norm) {
    const packed::PackedX px = pack_x(x, n, k, k, ws.caller().x, pool, norm);
    for (int i = 0; i < count; ++i) {
        const Product& p = products[i];
        run(px, panel_source(*p.weight, k), p.out, p.bias, p.y, p.out, pool, run_slots(pool, ws, p.out), p.act, p.add);
    }
}

/// kernels::linear_chain at Isa::avx2, where neither product goes through dot_q8 and the first
/// adds no residual: the first's result written straight into the second's packed x as its
/// tiles finish (run's `to`; first.y is not written), instead of into first.y and packed from
/// there. The same numbers as linear_many for each.
ALTCLIP_KERNEL_ENTRY inline void linear_chain(const float* x, std::int64_t n, std::int64_t k, const Product& first,
                                              const Product& second, ThreadPool* pool, Workspace& ws,
                                              const RowNorm* norm) {
    const packed::PackedX px = pack_x(x, n, k, k, ws.caller().x, pool, norm);
    const packed::PackedX mid = packed_shape(n, first.out, ws.caller().chained);
    run(px, panel_source(*first.weight, k), first.out, first.bias, nullptr, first.out, pool,
        run_slots(pool, ws, first.out), first.act, false, ws.caller().chained.units.data());
    run(mid, panel_source(*second.weight, first.out), second.out, second.bias, second.y, second.out, pool,
        run_slots(pool, ws, second.out), second.act, second.add);
}

/// f over x[0, count) in place, 16 lanes at a time; the tail through a zero-padded block,
/// so every element takes the same path.
template <class F>
inline void map16(float* x, std::int64_t count, F f) {
    using L = v256::Lanes;
    std::int64_t i = 0;
    for (; i + 16 <= count; i += 16) L::store(x + i, f(L::load(x + i)));
    if (i < count) {
        alignas(32) float buf[16] = {};
        std::copy(x + i, x + count, buf);
        L::store(buf, f(L::load(buf)));
        std::copy(buf, buf + (count - i), x + i);
    }
}

ALTCLIP_KERNEL_ENTRY inline void gelu_erf(float* x, std::int64_t count) { map16(x, count, v256::gelu); }
ALTCLIP_KERNEL_ENTRY inline void quick_gelu(float* x, std::int64_t count) { map16(x, count, v256::quick_gelu); }

/// LayerNorm of rows [r0, r1) (ops.hpp's layer_norm at Isa::avx2): row_stats, then
/// (x - mean) * rstd * gamma + beta as one multiply and one fused multiply-add per value.
ALTCLIP_KERNEL_ENTRY inline void layer_norm_rows(const float* x, std::int64_t r0, std::int64_t r1, std::int64_t n,
                                                 const float* gamma, const float* beta, float eps, float* y) {
    const std::int64_t full = n / 8 * 8;
    for (std::int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * n;
        float* yr = y + r * n;
        const RowStats st = row_stats(xr, n, eps);
        const __m256 fm = _mm256_set1_ps(st.mean), fr = _mm256_set1_ps(st.rstd);
        for (std::int64_t i = 0; i < full; i += 8)
            _mm256_storeu_ps(yr + i, normalize8(_mm256_loadu_ps(xr + i), fm, fr, gamma + i, beta + i));
        for (std::int64_t i = full; i < n; ++i) yr[i] = normalize1(xr[i], st, gamma[i], beta[i]);
    }
}

/// out = softmax(Q K^T * scale, keys masked) V for one (sequence, head) (ops.hpp's
/// attention_head at Isa::avx2), fused as the AVX-512 kernel is: K^T and V packed once into
/// panels, then 12 query rows at a time, all in L1/L2 (the seq x seq score matrix never
/// exists): their scores (12 x seq) made by the micro-kernel against the K^T panels, scaled
/// and written transposed, as the P V product reads them; the softmax taken down those
/// columns, the 12 rows side by side in the lanes; the unnormalised e^(s - max) multiplied by
/// the V panels over every key at once (one sliver's units are contiguous), and each output
/// row divided by its sum. Against whole-matrix products and a row-wise softmax: a 16-token
/// text's attention 1.4-1.6x as fast, an image's 1.15-1.18x (the keys, values and queries of
/// a head are read from rows 4 KB apart; Intel Xeon, 2 threads, bench/attention_bench.cpp).
/// q, k, v, out: [seq] rows of `ld` floats, the head's `d` values first. `key_mask`: nullptr
/// or [seq], 0 = padding (a row whose every key is masked gives zeros). `b`: the buffers of the
/// thread running it (its slot's).
ALTCLIP_KERNEL_ENTRY inline void attention_head(const float* q, const float* k, const float* v, std::int64_t seq,
                                                std::int64_t d, std::int64_t ld, const std::int64_t* key_mask,
                                                float scale, float* out, KernelBuffers& b) {
    using packed::aligned_at_least;
    // K^T: panel p holds keys [32 p, 32 p + 32) as columns, dims as units; V: panel p holds
    // dims [32 p, 32 p + 32) as columns, keys as units (zero past d).
    const std::int64_t kpanels = (seq + NR - 1) / NR, vpanels = (d + NR - 1) / NR;
    std::uint32_t* const keys = aligned_at_least(b.keys, kpanels * d * NR);
    std::uint32_t* const values = aligned_at_least(b.values, vpanels * seq * NR);
    float* const tile = aligned_at_least(b.tile_sums, MR * NR);
    packed::PanelSource ksrc;  // K as a row-major W: keys are its rows, dims its units
    ksrc.data = k;
    ksrc.k = d;
    ksrc.ld = ld;
    for (std::int64_t p = 0; p < kpanels; ++p)
        avx2::pack_panel(ksrc, p * NR, static_cast<int>(std::min<std::int64_t>(NR, seq - p * NR)), 0, d, keys + p * d * NR, seq);
    for (std::int64_t p = 0; p < vpanels; ++p) {
        const std::int64_t c0 = p * NR, nc = std::min<std::int64_t>(NR, d - c0);
        std::uint32_t* dst = values + p * seq * NR;
        for (std::int64_t j = 0; j < seq; ++j) {
            if (j + 8 < seq) prefetch_row(v + (j + 8) * ld + c0, nc);
            float* row = reinterpret_cast<float*>(dst + j * NR);
            if (nc == NR) {  // (a call to memmove per row took 0.3% of an image's time)
                for (int c = 0; c < NR; c += 8) _mm256_store_ps(row + c, _mm256_loadu_ps(v + j * ld + c0 + c));
                continue;
            }
            std::copy(v + j * ld + c0, v + j * ld + c0 + nc, row);
            std::fill(row + nc, row + NR, 0.0f);
        }
    }
    // One sliver's probabilities, packed as the P V product reads them: [key][MR], keys padded
    // to a multiple of 4 with -inf (e^-inf = 0), the rows past the sliver's last 0.
    const std::int64_t keys4 = (seq + 3) / 4 * 4;
    float* const probs = aligned_at_least(b.scores, keys4 * MR);
    const __m256 vscale = _mm256_set1_ps(scale), zero = _mm256_setzero_ps();
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();
    for (std::int64_t r0 = 0; r0 < seq; r0 += MR) {
        const std::int64_t mr = std::min<std::int64_t>(MR, seq - r0);
        // Scores of rows [r0, r0 + mr) against every key, scaled, written transposed into
        // `probs`. A single sliver's units lie one after another across k blocks: the products
        // run over all of k.
        const packed::PackedX pq = avx2::pack_x(q + r0 * ld, mr, d, ld, b.q, nullptr);
        for (std::int64_t i = r0 + MR; i < std::min(seq, r0 + 2 * MR); ++i) prefetch_row(q + i * ld, d);  // the next sliver's
        for (std::int64_t p = 0; p < kpanels; ++p) {
            micro(pq.data, F32Rows{reinterpret_cast<const float*>(keys + p * d * NR), NR}, d, tile, false, mr);
            const std::int64_t nr = std::min<std::int64_t>(NR, seq - p * NR), nr8 = nr / 8 * 8;
            float* const dst = probs + p * NR * MR;
            for (std::int64_t c = 0; c < nr8; c += 8)
                store_sliver_units8(
                    [&](int i) { return i < mr ? _mm256_mul_ps(_mm256_loadu_ps(tile + i * NR + c), vscale) : zero; },
                    reinterpret_cast<std::uint32_t*>(dst + c * MR));
            for (std::int64_t c = nr8; c < nr; ++c)
                for (std::int64_t i = 0; i < MR; ++i) dst[c * MR + i] = i < mr ? tile[i * NR + c] * scale : 0.0f;
        }
        std::fill(probs + seq * MR, probs + keys4 * MR, kNegInf);
        if (key_mask != nullptr) {
            for (std::int64_t j = 0; j < seq; ++j)
                if (key_mask[j] == 0) std::fill(probs + j * MR, probs + (j + 1) * MR, kNegInf);
        }
        // Softmax down the packed columns: every row's 12 lanes side by side, four keys (six
        // registers, three lane patterns) at a time, the rows' maxima and sums gathered at the
        // end; e^(s - max) left unnormalised, the output rows divided by their sums below.
        __m256 m[6];
        for (auto& x : m) x = _mm256_set1_ps(kNegInf);
        for (std::int64_t j = 0; j < keys4; j += 4)
            for (int i = 0; i < 6; ++i) m[i] = _mm256_max_ps(m[i], _mm256_load_ps(probs + j * MR + 8 * i));
        alignas(32) float lanes[48], rowmax[MR], mlanes[48];
        bool none[MR];  // every key masked: the row's output is zeros (as the other levels make it)
        for (int i = 0; i < 6; ++i) _mm256_store_ps(lanes + 8 * i, m[i]);
        for (int r = 0; r < MR; ++r) {
            float x = lanes[r];
            for (int u = 1; u < 4; ++u) x = std::max(x, lanes[u * MR + r]);
            none[r] = x == kNegInf;
            rowmax[r] = none[r] ? 0.0f : x;
        }
        for (int i = 0; i < 48; ++i) mlanes[i] = rowmax[i % MR];
        using L = v256::Lanes;
        const L::F mx[3] = {L::load(mlanes), L::load(mlanes + 16), L::load(mlanes + 32)};
        L::F sums[3] = {L::set1(0.0f), L::set1(0.0f), L::set1(0.0f)};
        for (std::int64_t j = 0; j < keys4; j += 4)
            for (int i = 0; i < 3; ++i) {
                float* at = probs + j * MR + 16 * i;
                const L::F e = v256::exp(L::sub(L::load(at), mx[i]));
                L::store(at, e);
                sums[i] = L::add(sums[i], e);
            }
        for (int i = 0; i < 3; ++i) L::store(lanes + 16 * i, sums[i]);
        float inv[MR];
        for (int r = 0; r < MR; ++r) {
            const float sum = lanes[r] + lanes[MR + r] + lanes[2 * MR + r] + lanes[3 * MR + r];
            inv[r] = none[r] || !(sum > 0.0f) ? 0.0f : 1.0f / sum;
        }
        // Output rows = (e . V) / sum
        for (std::int64_t p = 0; p < vpanels; ++p) {
            micro(reinterpret_cast<const std::uint32_t*>(probs), F32Rows{reinterpret_cast<const float*>(values + p * seq * NR), NR},
                  seq, tile, false, mr);
            const std::int64_t nr = std::min<std::int64_t>(NR, d - p * NR), nr8 = nr / 8 * 8;
            for (std::int64_t i = 0; i < mr; ++i) {
                float* o = out + (r0 + i) * ld + p * NR;
                const __m256 vinv = _mm256_set1_ps(inv[i]);
                for (std::int64_t c = 0; c < nr8; c += 8) _mm256_storeu_ps(o + c, _mm256_mul_ps(_mm256_loadu_ps(tile + i * NR + c), vinv));
                for (std::int64_t c = nr8; c < nr; ++c) o[c] = tile[i * NR + c] * inv[i];
            }
        }
    }
}

}  // namespace altclip::kernels::avx2
ALTCLIP_AVX2_END
#endif  // ALTCLIP_X86
