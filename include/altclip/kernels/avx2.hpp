// The kernels of Isa::avx2 (AVX2 + FMA: most laptops and older servers): float32 math on
// the packed layout of gemm_packed.hpp (x in slivers of MR rows, W in panels of NR columns,
// used in place when the file stores them so), a 3 x 32 micro-kernel run four times over
// each MR x NR tile (12 accumulators of 8 lanes fit AVX2's 16 registers), the tasks and tile
// sums laid out as packed::run lays them, and softmax and GELU with lanes.inc's exp and GELU.
// bf16 and int8 weights are widened to float32 units as panels are packed, eight rows by
// eight values at a time.
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

/// Eight values of W's row j from column c as float32, as unit_of makes them (row-major sources).
inline __m256 row8(const packed::PanelSource& w, std::int64_t j, std::int64_t c) {
    switch (w.kind) {
        case packed::Source::bf16_widen: {
            const auto* p = static_cast<const std::uint16_t*>(w.data) + j * w.stride() + c;
            const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
            return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
        }
        case packed::Source::i8_widen: {
            const auto* p = static_cast<const std::int8_t*>(w.data) + j * w.stride() + c;
            const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
            return _mm256_mul_ps(f, _mm256_set1_ps(w.scale[j]));
        }
        default:  // f32
            return _mm256_loadu_ps(static_cast<const float*>(w.data) + j * w.stride() + c);
    }
}

/// W rows [j, j + nr), units [u0, u0 + kus) as float32 units in panel[unit][NR] (zero past nr).
/// Whole 8 x 8 blocks of row-major W are widened and transposed in registers; bf16 panels are
/// widened a pair of unit rows at a time; what is left over goes value by value (unit_of).
inline void pack_panel(const packed::PanelSource& w, std::int64_t j, int nr, std::int64_t u0, std::int64_t kus,
                       std::uint32_t* panel) {
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
    for (int r = 0; r < nr8; r += 8)
        for (std::int64_t u = 0; u < kus8; u += 8) {
            __m256 v[8];
            for (int i = 0; i < 8; ++i) v[i] = row8(w, j + r + i, u0 + u);
            transpose8_store(v, panel + u * NR + r, NR);
        }
    // The rest: units past the last whole 8 for the rows done above, and every unit of the other rows.
    for (std::int64_t u = 0; u < kus; ++u)
        for (int jj = u < kus8 ? nr8 : 0; jj < NR; ++jj) panel[u * NR + jj] = jj < nr ? packed::unit_of(w, j + jj, u0 + u) : 0u;
}

/// tile[i][c] (+)= sum over kus units of a[unit][i] * b[unit * ldb + c] for the 12 x 32 tile,
/// as four 3 x 32 register blocks: 12 accumulators, three broadcasts of x held while the four
/// 8-lane pieces of the W row stream by (16 registers; 7 loads per 12 multiply-adds). ldb:
/// NR for a packed panel, the stored panel's rows for one used in place. `accumulate`: add
/// to the tile's sums of the earlier k blocks instead of overwriting them.
inline void micro(const std::uint32_t* a, const std::uint32_t* b, std::int64_t ldb, std::int64_t kus, float* tile,
                  bool accumulate) {
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
                __m256 bj = _mm256_loadu_ps(bf + u * ldb + 8 * j);
                // One load of bj for its three multiply-adds: tuned for some CPUs (GCC's
                // -march=znver3), the compiler would fold it into each of them instead, 15 loads
                // per 12 multiply-adds, more than Zen 3's two 256-bit loads a cycle feed (a
                // -march=native build ran 20-28% slower than the consumer build there).
                __asm__("" : "+x"(bj));
                acc[0][j] = _mm256_fmadd_ps(a0, bj, acc[0][j]);
                acc[1][j] = _mm256_fmadd_ps(a1, bj, acc[1][j]);
                acc[2][j] = _mm256_fmadd_ps(a2, bj, acc[2][j]);
            }
        }
#pragma GCC unroll 12
        for (int i = 0; i < 12; ++i) {
            float* t = tile + (r0 + i / 4) * NR + 8 * (i % 4);
            _mm256_storeu_ps(t, accumulate ? _mm256_add_ps(_mm256_loadu_ps(t), acc[i / 4][i % 4]) : acc[i / 4][i % 4]);
        }
    }
}

/// y[n, out] (row stride ldy) = x . W^T (+ bias), W given as float32 units. As packed::run
/// (gemm_packed.hpp) does it: a task owns kTaskCols output columns (two panels, packed once
/// per k block or used in place), runs them over x's slivers kSliverBlock at a time (that
/// part of x stays in L2 while both panels pass over it), and keeps its tiles' sums between k
/// blocks in its slot's tile_sums ([sliver][panel][MR][NR], contiguous: y's rows are `out`
/// floats apart, which puts a tile's rows in one L1 set); the last k block writes y.
/// `slots`: a KernelBuffers per slot of the pool's loop (one when pool is nullptr).
inline void run(const packed::PackedX& px, const packed::PanelSource& w, std::int64_t out, const float* bias, float* y,
                std::int64_t ldy, ThreadPool* pool, KernelBuffers* slots) {
    constexpr int kPanels = static_cast<int>(packed::kTaskCols / NR);
    constexpr std::int64_t kTile = MR * NR;
    const std::int64_t tasks = (out + packed::kTaskCols - 1) / packed::kTaskCols;
    auto task = [&](std::int64_t t, int slot) {
        alignas(32) std::uint32_t panels[kPanels][KU * NR];
        float* const sums = packed::aligned_at_least(slots[slot].tile_sums, px.slivers * kPanels * kTile);
        const std::int64_t j0 = t * packed::kTaskCols, j1 = std::min(out, j0 + packed::kTaskCols);
        for (std::int64_t b = 0; b < px.nblocks; ++b) {
            const std::int64_t u0 = b * KU, kus = std::min(px.ku, u0 + KU) - u0;
            const bool last = b + 1 == px.nblocks;
            int np = 0;
            const std::uint32_t* panel_at[kPanels];
            std::int64_t ldb[kPanels];
            for (std::int64_t j = j0; j < j1; j += NR, ++np) {
                if (w.kind == packed::Source::panels) {
                    ldb[np] = w.panel_rows;
                    panel_at[np] = packed::stored_panel(w, j, 1) + u0 * ldb[np];
                } else {
                    avx2::pack_panel(w, j, static_cast<int>(std::min<std::int64_t>(NR, j1 - j)), u0, kus, panels[np]);
                    panel_at[np] = panels[np];
                    ldb[np] = NR;
                }
            }
            // A panel used in place comes from the mapped file, from memory on first use (the
            // hardware prefetchers stop at each 4 KB page): its next k block is prefetched over
            // the micro-tiles of its first pass, a few unit rows (two cache lines each) per tile.
            const std::int64_t next_units =
                w.kind == packed::Source::panels && !last ? std::min(px.ku, u0 + 2 * KU) - (u0 + KU) : 0;
            const std::int64_t first_pass = std::min(px.slivers, packed::kSliverBlock);
            const std::int64_t per_tile = (next_units + first_pass - 1) / first_pass;
            for (std::int64_t s0 = 0; s0 < px.slivers; s0 += packed::kSliverBlock) {
                const std::int64_t s1 = std::min(px.slivers, s0 + packed::kSliverBlock);
                for (int p = 0; p < np; ++p) {
                    const std::int64_t j = j0 + p * NR;
                    const int nr = static_cast<int>(std::min<std::int64_t>(NR, j1 - j));
                    for (std::int64_t s = s0; s < s1; ++s) {
                        if (s0 == 0) {
                            const std::int64_t f0 = std::min(next_units, s * per_tile);
                            const std::int64_t f1 = std::min(next_units, f0 + per_tile);
                            const std::uint32_t* next = panel_at[p] + KU * ldb[p];
                            for (std::int64_t u = f0; u < f1; ++u) {
                                _mm_prefetch(reinterpret_cast<const char*>(next + u * ldb[p]), _MM_HINT_T0);
                                _mm_prefetch(reinterpret_cast<const char*>(next + u * ldb[p] + 16), _MM_HINT_T0);
                            }
                        }
                        float* const tile = sums + (s * kPanels + p) * kTile;
                        micro(px.at(b, s), panel_at[p], ldb[p], kus, tile, b > 0);
                        if (!last) continue;
                        const std::int64_t mr = std::min<std::int64_t>(MR, px.n - s * MR);
                        for (std::int64_t i = 0; i < mr; ++i) {
                            float* yr = y + (s * MR + i) * ldy + j;
                            const float* tr = tile + i * NR;
                            if (bias != nullptr)
                                for (int c = 0; c < nr; ++c) yr[c] = tr[c] + bias[j + c];
                            else
                                std::copy(tr, tr + nr, yr);
                        }
                    }
                }
            }
        }
    };
    parallel_for_slots(pool, tasks, task);
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
    avx2::run(avx2::pack_x(x, n, k, k, ws.caller().x, pool), src, out, bias, y, out, pool,
              ws.slots(slot_count(pool, (out + packed::kTaskCols - 1) / packed::kTaskCols)));
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
        scores, seq, nullptr, &b);
    for (std::int64_t i = 0; i < seq; ++i)
        for (std::int64_t j = 0; j < seq; ++j) {
            float& s = scores[i * seq + j];
            s = key_mask != nullptr && key_mask[j] == 0 ? -std::numeric_limits<float>::infinity() : s * scale;
        }
    avx2::softmax_rows(scores, seq, seq);
    for (std::int64_t t = 0; t < seq; ++t)
        for (std::int64_t c = 0; c < d; ++c) vt[c * seq + t] = v[t * ld + c];
    avx2::run(avx2::pack_x(scores, seq, seq, seq, b.p, nullptr), packed::PanelSource{packed::Source::f32, vt, seq, nullptr},
        d, nullptr, o, d, nullptr, &b);
    for (std::int64_t t = 0; t < seq; ++t) std::copy(o + t * d, o + (t + 1) * d, out + t * ld);
}

}  // namespace altclip::kernels::avx2
ALTCLIP_AVX2_END
#endif  // ALTCLIP_X86
