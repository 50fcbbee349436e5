// The kernels of Isa::avx2 (AVX2 + FMA: most laptops and older servers): float32 math on
// the packed layout of gemm_packed.hpp (x in slivers of MR rows, W in panels of NR columns,
// used in place when the file stores them so), a 6 x 16 micro-kernel run four times over
// each MR x NR tile (12 accumulators of 8 lanes fit AVX2's 16 registers), and softmax and
// GELU with lanes.inc's exp and GELU. bf16 and int8 weights are widened to float32 units as
// panels are packed.
// Compiled in an AVX2 target region (cpu.hpp); entered only at Isa::avx2 and above.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

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

/// x (float32, row stride ldx) as float32 units in slivers: [block][sliver][unit][MR].
inline packed::PackedX pack_x(const float* x, std::int64_t n, std::int64_t k, std::int64_t ldx, PackedXBuffers& ws,
                              ThreadPool* pool) {
    packed::PackedX p;
    p.n = n;
    p.ku = k;
    p.slivers = (n + MR - 1) / MR;
    p.nblocks = packed::blocks(k);
    const std::int64_t size = p.nblocks * p.block_stride();
    if (static_cast<std::int64_t>(ws.units.size()) < size) ws.units.resize(static_cast<std::size_t>(size));
    std::uint32_t* data = ws.units.data();
    p.data = data;
    parallel_chunks(pool, p.slivers, 1, [&](std::int64_t s0, std::int64_t s1) {
        for (std::int64_t s = s0; s < s1; ++s)
            for (std::int64_t b = 0; b < p.nblocks; ++b) {
                std::uint32_t* dst = data + b * p.block_stride() + s * p.sliver_stride();
                const std::int64_t u0 = b * KU, kus = std::min(k, u0 + KU) - u0;
                for (int i = 0; i < MR; ++i) {
                    const std::int64_t r = s * MR + i;
                    if (r >= n) {
                        for (std::int64_t u = 0; u < kus; ++u) dst[u * MR + i] = 0;
                    } else {
                        const float* xr = x + r * ldx + u0;
                        for (std::int64_t u = 0; u < kus; ++u) std::memcpy(dst + u * MR + i, xr + u, 4);
                    }
                }
            }
    });
    return p;
}

/// W rows [j, j + nr), units [u0, u0 + kus) as float32 units in panel[unit][NR] (zero past nr).
inline void pack_panel(const packed::PanelSource& w, std::int64_t j, int nr, std::int64_t u0, std::int64_t kus,
                       std::uint32_t* panel) {
    if (w.kind == packed::Source::bf16_panels_widen) {  // bfloat16 pairs in panels: halves widened
        const std::int64_t p = w.panel_rows;
        const std::uint32_t* src = packed::stored_panel(w, j, 2);
        for (std::int64_t u = 0; u < kus; ++u) {
            const std::int64_t c = u0 + u;
            const std::uint32_t* pair = src + (c / 2) * p;
            for (int jj = 0; jj < NR; ++jj) panel[u * NR + jj] = c % 2 == 0 ? pair[jj] << 16 : pair[jj] & 0xFFFF0000u;
        }
        return;
    }
    for (std::int64_t u = 0; u < kus; ++u)
        for (int jj = 0; jj < NR; ++jj) panel[u * NR + jj] = jj < nr ? packed::unit_of(w, j + jj, u0 + u) : 0u;
}

/// tile[i][c] = sum over kus units of a[unit][i] * b[unit * ldb + c] for the 12 x 32 tile, as
/// four 3 x 32 register blocks: 12 accumulators, three broadcasts of x held while the four
/// 8-lane pieces of the W row stream by (16 registers; 7 loads per 12 multiply-adds). ldb:
/// NR for a packed panel, the stored panel's rows for one used in place.
inline void micro(const std::uint32_t* a, const std::uint32_t* b, std::int64_t ldb, std::int64_t kus, float* tile) {
    const float* af = reinterpret_cast<const float*>(a);
    const float* bf = reinterpret_cast<const float*>(b);
    for (int r0 = 0; r0 < MR; r0 += 3) {
        __m256 acc[3][4];
#pragma GCC unroll 12
        for (int i = 0; i < 12; ++i) acc[i / 4][i % 4] = _mm256_setzero_ps();
        for (std::int64_t u = 0; u < kus; ++u) {
            const float* ar = af + u * MR + r0;
            const __m256 a0 = _mm256_broadcast_ss(ar), a1 = _mm256_broadcast_ss(ar + 1), a2 = _mm256_broadcast_ss(ar + 2);
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
                const __m256 bj = _mm256_loadu_ps(bf + u * ldb + 8 * j);
                acc[0][j] = _mm256_fmadd_ps(a0, bj, acc[0][j]);
                acc[1][j] = _mm256_fmadd_ps(a1, bj, acc[1][j]);
                acc[2][j] = _mm256_fmadd_ps(a2, bj, acc[2][j]);
            }
        }
#pragma GCC unroll 12
        for (int i = 0; i < 12; ++i) _mm256_storeu_ps(tile + (r0 + i / 4) * NR + 8 * (i % 4), acc[i / 4][i % 4]);
    }
}

/// y[n, out] (row stride ldy) = x . W^T (+ bias), W given as float32 units.
inline void run(const packed::PackedX& px, const packed::PanelSource& w, std::int64_t out, const float* bias, float* y,
                std::int64_t ldy, ThreadPool* pool) {
    const std::int64_t tasks = (out + NR - 1) / NR;
    auto task = [&](std::int64_t t) {
        alignas(32) std::uint32_t panel[KU * NR];
        alignas(32) float tile[MR * NR];
        const std::int64_t j = t * NR;
        const int nr = static_cast<int>(std::min<std::int64_t>(NR, out - j));
        for (std::int64_t b = 0; b < px.nblocks; ++b) {
            const std::int64_t u0 = b * KU, kus = std::min(px.ku, u0 + KU) - u0;
            const std::uint32_t* pan = panel;
            std::int64_t ldb = NR;
            if (w.kind == packed::Source::panels) {
                ldb = w.panel_rows;
                pan = packed::stored_panel(w, j, 1) + u0 * ldb;
            } else {
                avx2::pack_panel(w, j, nr, u0, kus, panel);
            }
            // A panel used in place comes from the mapped file, from memory on first use (the
            // hardware prefetchers stop at each 4 KB page): its next k block is prefetched over
            // this block's slivers, a few unit rows (NR units, two cache lines each) per sliver.
            const std::uint32_t* next = w.kind == packed::Source::panels && b + 1 < px.nblocks ? pan + KU * ldb : nullptr;
            const std::int64_t next_units = next ? std::min(px.ku, u0 + 2 * KU) - (u0 + KU) : 0;
            const std::int64_t per_sliver = (next_units + px.slivers - 1) / px.slivers;
            for (std::int64_t s = 0; s < px.slivers; ++s) {
                for (std::int64_t u = s * per_sliver; u < std::min(next_units, (s + 1) * per_sliver); ++u) {
                    _mm_prefetch(reinterpret_cast<const char*>(next + u * ldb), _MM_HINT_T0);
                    _mm_prefetch(reinterpret_cast<const char*>(next + u * ldb + 16), _MM_HINT_T0);
                }
                micro(px.at(b, s), pan, ldb, kus, tile);
                const std::int64_t mr = std::min<std::int64_t>(MR, px.n - s * MR);
                for (std::int64_t i = 0; i < mr; ++i) {
                    float* yr = y + (s * MR + i) * ldy + j;
                    const float* tr = tile + i * NR;
                    if (b == 0)
                        for (int c = 0; c < nr; ++c) yr[c] = tr[c] + (bias != nullptr ? bias[j + c] : 0.0f);
                    else
                        for (int c = 0; c < nr; ++c) yr[c] += tr[c];
                }
            }
        }
    };
    parallel_for(pool, tasks, task);
}

/// kernels::linear at Isa::avx2: every weight type multiplied in float32.
ALTCLIP_KERNEL_ENTRY inline void linear(const float* x, std::int64_t n, std::int64_t k, const WeightMatrix& w,
                                        const float* bias, std::int64_t out, float* y, ThreadPool* pool,
                                        Workspace& ws) {
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
    avx2::run(avx2::pack_x(x, n, k, k, ws.caller().x, pool), src, out, bias, y, out, pool);
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

/// Softmax of each row of [rows, n] in place; a row of only -inf becomes zeros.
inline void softmax_rows(float* x, std::int64_t rows, std::int64_t n) {
    for (std::int64_t r = 0; r < rows; ++r) {
        float* a = x + r * n;
        const float m = *std::max_element(a, a + n);
        if (m == -std::numeric_limits<float>::infinity()) {
            std::fill(a, a + n, 0.0f);
            continue;
        }
        for (std::int64_t i = 0; i < n; ++i) a[i] -= m;
        map16(a, n, v256::exp);  // masked keys (-inf) become exactly 0, as in the reference
        double sum = 0;
        for (std::int64_t i = 0; i < n; ++i) sum += a[i];
        const float inv = static_cast<float>(1.0 / sum);
        for (std::int64_t i = 0; i < n; ++i) a[i] *= inv;
    }
}

/// One (sequence, head) of attention: scores = Q K^T * scale through the packed product
/// (K's rows are the "weights"), masked, softmaxed, times V (transposed into a buffer).
/// `b`: the buffers of the thread running it (every element written before it is read).
ALTCLIP_KERNEL_ENTRY inline void attention_head(const float* q, const float* k, const float* v, std::int64_t seq,
                                                std::int64_t d, std::int64_t ld, const std::int64_t* key_mask,
                                                float scale, float* out, KernelBuffers& b) {
    float* const scores = packed::aligned_at_least(b.scores, seq * seq);
    float* const vt = packed::aligned_at_least(b.values_t, d * seq);
    float* const o = packed::aligned_at_least(b.out, seq * d);
    avx2::run(avx2::pack_x(q, seq, d, ld, b.q, nullptr), packed::PanelSource{packed::Source::f32, k, d, nullptr, ld}, seq, nullptr,
        scores, seq, nullptr);
    for (std::int64_t i = 0; i < seq; ++i)
        for (std::int64_t j = 0; j < seq; ++j) {
            float& s = scores[i * seq + j];
            s = key_mask != nullptr && key_mask[j] == 0 ? -std::numeric_limits<float>::infinity() : s * scale;
        }
    avx2::softmax_rows(scores, seq, seq);
    for (std::int64_t t = 0; t < seq; ++t)
        for (std::int64_t c = 0; c < d; ++c) vt[c * seq + t] = v[t * ld + c];
    avx2::run(avx2::pack_x(scores, seq, seq, seq, b.p, nullptr), packed::PanelSource{packed::Source::f32, vt, seq, nullptr},
        d, nullptr, o, d, nullptr);
    for (std::int64_t t = 0; t < seq; ++t) std::copy(o + t * d, o + (t + 1) * d, out + t * ld);
}

}  // namespace altclip::kernels::avx2
ALTCLIP_AVX2_END
#endif  // ALTCLIP_X86
