// The packed GEMM for inputs with many rows (an image's 257 tokens, a batch of labels), and
// for any input when W is stored in panels:
// y[n, out] = x[n, k] . W[out, k]^T (+ bias), BLIS-style.
//
// Both operands are repacked into 32-bit "units" so that one micro-kernel serves every
// precision: a unit is one float32 (f32), a pair of bfloat16 along k (vdpbf16ps), or four
// int8 along k (vpdpbusd). Per call:
//   - x is packed once into slivers of MR rows, [k block][sliver][unit][MR], shared by all
//     threads (for int8 it is first quantized per row, as the dot-product path does), in the
//     caller's buffers for the call (Workspace, buffer.hpp), kept for its next product;
//   - each task owns 64 output columns; for each k block it packs their two panels of W
//     ([unit][NR], 16 KB each), or takes them in place when the model file stores W so
//     (Source::panels, prefetching the next block's meanwhile), and runs the MR x NR
//     micro-kernel with each panel over the slivers of x, 24 slivers at a time (a panel
//     stays in L1, those slivers in L2).
// The micro-kernel broadcasts one unit of x per row and multiplies it with two 16-lane
// vectors of W: 24 accumulators, 2 loads and 12 broadcasts per 24 multiply-adds.
// Sums over k run in the same order whatever the number of threads.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "activation.hpp"
#include "buffer.hpp"
#include "cpu.hpp"
#include "lanes_avx512.hpp"
#include "thread_pool.hpp"
#include "weight_matrix.hpp"

namespace altclip::kernels::packed {

// The layout and bookkeeping, shared by every instruction set's kernels (no intrinsics).
constexpr int MR = 12;                  // rows of x per micro-tile
constexpr int NR = 32;                  // output columns per micro-tile (two 16-lane vectors)
static_assert(kPanelRows % NR == 0 && kPanelRowsV2 % NR == 0,
              "a stored panel (format/layout.hpp) holds whole micro-tiles' columns");
constexpr std::int64_t KU = 128;        // units of k per block: a W panel is KU * NR * 4 = 16 KB
constexpr std::int64_t kTaskCols = 64;  // output columns per task (two panels)
constexpr std::int64_t kSliverBlock = 24;  // slivers of x per pass over a task's panels: 288 rows, ~150 KB
// Every task reads all of x. Where packed x outgrows L2 (fc2's 4 MB for an image in float32;
// 2 MB in bf16) it comes from L3 again for each task, so a task takes eight panels instead
// of two, as long as its tile sums stay small enough to stay in L2 beside a block of x (not
// for a batch of images). fc2 of an image: 347-374 -> 377-398 GFLOP/s (AVX-512), 208-210 ->
// 215-216 (AVX2), alternating runs (Intel Xeon with AMX, 2 cores; bench/RESULTS.md).
constexpr std::int64_t kWideTaskCols = 256;
constexpr std::int64_t kWideFromBytes = 1536 * 1024;  // packed x larger than this (an image's qkv, 1.1 MB, is not)
constexpr std::int64_t kWideSumsBytes = 512 * 1024;   // a wide task's tile sums at most this
constexpr int kMaxTaskPanels = static_cast<int>(kWideTaskCols / NR);

/// What the epilogue adds to the micro-tile's sums.
struct Epilogue {
    const float* bias = nullptr;     // [out] or nullptr; added with the first k block
    const float* wscale = nullptr;   // int8: [out]
    const float* xscale = nullptr;   // int8: [rows]
    const std::int32_t* xsum = nullptr;  // int8: [rows] of this k block (sum of x's int8 values)
};

/// Units of k for `k` values of G per unit, and blocks of KU units.
inline std::int64_t units(std::int64_t k, int g) { return (k + g - 1) / g; }
inline std::int64_t blocks(std::int64_t ku) { return (ku + KU - 1) / KU; }

/// x packed: data[block][sliver][unit][MR] (32-bit units; rows past n are 0, units past k
/// in a partly filled unit are 0; whole units past the last one are never read).
struct PackedX {
    const std::uint32_t* data = nullptr;
    const std::int32_t* xsum = nullptr;  // int8: [block][rows rounded up to MR]
    const float* xscale = nullptr;       // int8: [n]
    std::int64_t n = 0, ku = 0, slivers = 0, nblocks = 0;
    std::int64_t sliver_stride() const { return KU * MR; }
    std::int64_t block_stride() const { return slivers * KU * MR; }
    const std::uint32_t* at(std::int64_t b, std::int64_t s) const { return data + b * block_stride() + s * sliver_stride(); }
};

/// Output columns per task of a product with x packed as px: kTaskCols, or kWideTaskCols
/// (above). The same numbers either way: a tile's sums run over k in the same order.
inline std::int64_t task_cols(const PackedX& px) {
    const std::int64_t x_bytes = px.nblocks * px.block_stride() * 4;
    const std::int64_t wide_sums = px.slivers * kWideTaskCols * MR * 4;
    return x_bytes > kWideFromBytes && wide_sums <= kWideSumsBytes ? kWideTaskCols : kTaskCols;
}

/// Values of k per 32-bit unit of x for a weight type: 1 (float32), 2 (bfloat16 pairs), 4 (int8).
inline int unit_values(WeightType t) {
    switch (t) {
        case WeightType::bf16_dot:
        case WeightType::q8_bf16: return 2;
        case WeightType::q8_dot: return 4;
        default: return 1;
    }
}

/// Where a W panel comes from: the stored [out, k] matrix and how its units are made.
enum class Source {
    f32,          // float32 units
    bf16_pairs,   // bfloat16, two per unit (Bf16Op)
    i8_quads,     // int8, four per unit, stored + 128 (I8Op)
    bf16_widen,   // bfloat16 widened to float32 units (F32Op)
    i8_widen,     // int8 times its row scale, as float32 units (F32Op)
    i8_bf16,      // int8 widened (exactly) to bfloat16, two per unit (Bf16Op; the row scale in the epilogue)
    panels,       // stored at conversion as the Op's units in panels: [ceil(out / NR)][units][NR], used in place
    bf16_panels_widen,  // bfloat16 panels (two per unit) widened to float32 units (F32Op)
};
struct PanelSource {
    Source kind = Source::f32;
    const void* data = nullptr;
    std::int64_t k = 0;
    const float* scale = nullptr;  // i8_widen: [out]
    std::int64_t ld = 0;           // values from one row to the next (0: k, rows stored back to back)
    std::int64_t panel_rows = kPanelRows;  // panels, bf16_panels_widen: rows per stored panel
    std::int64_t stride() const { return ld != 0 ? ld : k; }
};

/// Unit u of W's row j, zero past k (the scalar path, for tails).
inline std::uint32_t unit_of(const PanelSource& w, std::int64_t j, std::int64_t u) {
    std::uint32_t r = 0;
    switch (w.kind) {
        case Source::f32:
            std::memcpy(&r, static_cast<const float*>(w.data) + j * w.stride() + u, 4);
            break;
        case Source::bf16_pairs: {
            const auto* p = static_cast<const std::uint16_t*>(w.data) + j * w.stride();
            r = p[2 * u];
            if (2 * u + 1 < w.k) r |= static_cast<std::uint32_t>(p[2 * u + 1]) << 16;
            break;
        }
        case Source::i8_quads: {
            const auto* p = static_cast<const std::uint8_t*>(w.data) + j * w.stride();
            for (int b = 0; b < 4; ++b) {
                const std::uint32_t v = 4 * u + b < w.k ? p[4 * u + b] : 0u;
                r |= (v ^ 0x80u) << (8 * b);
            }
            break;
        }
        case Source::bf16_widen:
            r = static_cast<std::uint32_t>(static_cast<const std::uint16_t*>(w.data)[j * w.stride() + u]) << 16;
            break;
        case Source::i8_widen: {
            const float f = static_cast<float>(static_cast<const std::int8_t*>(w.data)[j * w.stride() + u]) * w.scale[j];
            std::memcpy(&r, &f, 4);
            break;
        }
        case Source::i8_bf16: {  // |q| <= 127 has at most 8 significant bits: bfloat16 holds it exactly
            const auto* p = static_cast<const std::int8_t*>(w.data) + j * w.stride();
            for (int h = 0; h < 2; ++h) {
                if (2 * u + h >= w.k) break;
                const float f = static_cast<float>(p[2 * u + h]);
                std::uint32_t bits;
                std::memcpy(&bits, &f, 4);
                r |= (bits >> 16) << (16 * h);
            }
            break;
        }
        case Source::panels:
        case Source::bf16_panels_widen:
            break;  // not packed unit by unit (used in place, or widened by widen_bf16_panel)
    }
    return r;
}

/// Where the NR columns of W from column j (a multiple of NR) start in a stored panel layout
/// of g values per unit: the panel holding them, at its column j % P; its unit rows are P apart.
inline const std::uint32_t* stored_panel(const PanelSource& w, std::int64_t j, int g) {
    const std::int64_t p = w.panel_rows;
    return static_cast<const std::uint32_t*>(w.data) + (j / p) * units(w.k, g) * p + j % p;
}

/// At least n elements of a kept buffer (grown as needed, contents left as they are),
/// starting on a cache line: for aligned vector loads, and so that the vector split of a row
/// never depends on which slot's buffer holds it.
template <class T>
inline T* aligned_at_least(std::vector<T>& v, std::int64_t n) {
    static_assert(sizeof(T) == 4, "32-bit elements");
    if (static_cast<std::int64_t>(v.size()) < n + 16) v.resize(static_cast<std::size_t>(n + 16));
    return v.data() + ((64 - reinterpret_cast<std::uintptr_t>(v.data()) % 64) % 64) / 4;
}

}  // namespace altclip::kernels::packed

#if ALTCLIP_X86
ALTCLIP_AVX512_BEGIN
namespace altclip::kernels::packed {


/// Lane masks of the two 16-lane halves of a 32-value row of which the first n are real.
struct HalfMasks {
    __mmask16 lo, hi;
};
inline HalfMasks half_masks(std::int64_t n) {
    return {static_cast<__mmask16>(n >= 16 ? 0xFFFF : (1u << n) - 1),
            static_cast<__mmask16>(n >= 32 ? 0xFFFF : n <= 16 ? 0 : (1u << (n - 16)) - 1)};
}

/// How units are multiplied and accumulated.
struct F32Op {  // unit = one float
    static constexpr int G = 1;
    static constexpr bool kInt = false;
    using Acc = __m512;
    static Acc zero() { return _mm512_setzero_ps(); }
    static __m512i bcast(const std::uint32_t* p) { return _mm512_castps_si512(_mm512_set1_ps(*reinterpret_cast<const float*>(p))); }
    static Acc madd(Acc acc, __m512i a, __m512i b) {
        return _mm512_fmadd_ps(_mm512_castsi512_ps(a), _mm512_castsi512_ps(b), acc);
    }
};
struct UnitBcast {  // a unit of packed pairs or quads, the same 32 bits in every lane
    static __m512i bcast(const std::uint32_t* p) { return _mm512_set1_epi32(static_cast<int>(*p)); }
};
struct Bf16Op : UnitBcast {  // unit = two bfloat16 (k, k + 1)
    static constexpr int G = 2;
    static constexpr bool kInt = false;
    using Acc = __m512;
    static Acc zero() { return _mm512_setzero_ps(); }
    static Acc madd(Acc acc, __m512i a, __m512i b) {
        return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh&>(a), reinterpret_cast<__m512bh&>(b));
    }
};
struct I8Op : UnitBcast {  // unit = four int8 (k .. k + 3); x signed, W stored + 128 (unsigned)
    static constexpr int G = 4;
    static constexpr bool kInt = true;
    using Acc = __m512i;
    static Acc zero() { return _mm512_setzero_si512(); }
    static Acc madd(Acc acc, __m512i a, __m512i b) {
        // vpdpbusd acc, b (unsigned), a (signed). Written as asm: through the intrinsic
        // (v16si operands on __m512i values) GCC 12 spills the 24 accumulators every step.
        __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(b), "v"(a));
        return acc;
    }
};

/// acc[i][h] += sum over kus units of a[unit][i] * b[unit * ldb + 16 h + lane], for rows i < R
/// (R < MR for the last sliver of x, whose other rows are padding); ldb: units from one unit
/// row of the panel to the next (NR for a packed panel, the stored panel's rows for one used in
/// place). With `fetch`, the first `nfetch` (<= kus) steps each also prefetch one unit row (NR
/// units, 128 bytes) of fetch (rows `ldf` units apart) into L2: spread over the steps, the
/// next panel streams in while this one computes.
template <class Op, int R = MR>
inline void micro(const std::uint32_t* a, const std::uint32_t* b, std::int64_t ldb, std::int64_t kus,
                  typename Op::Acc (&acc)[MR][2], const std::uint32_t* fetch = nullptr, std::int64_t nfetch = 0,
                  std::int64_t ldf = 0) {
    for (std::int64_t u = 0; u < kus; ++u) {
        if (u < nfetch) {
            _mm_prefetch(reinterpret_cast<const char*>(fetch + u * ldf), _MM_HINT_T1);
            _mm_prefetch(reinterpret_cast<const char*>(fetch + u * ldf + 16), _MM_HINT_T1);
        }
        const __m512i b0 = _mm512_load_si512(b), b1 = _mm512_load_si512(b + 16);
        #pragma GCC unroll 16
        for (int i = 0; i < R; ++i) {
            const __m512i ai = Op::bcast(a + i);
            acc[i][0] = Op::madd(acc[i][0], ai, b0);
            acc[i][1] = Op::madd(acc[i][1], ai, b1);
        }
        a += MR;
        b += ldb;
    }
}


/// Finishes one k block of an MR x NR tile: v = acc (scaled, for int8 corrected by the
/// block's x sums) + (first k block ? bias : the sums so far, read from `prev`), then `act`
/// (the last k block's: an MLP's activation, v512::activate as ops.hpp's pass applies it),
/// written to `dst`, or with `add` (a residual) dst + v. Only rows [0, mr) and columns [0, nr)
/// are read or written.
template <class Op>
inline void store_tile(typename Op::Acc (&acc)[MR][2], bool first, const Epilogue& e, std::int64_t row0,
                       std::int64_t col0, int mr, int nr, const float* prev, std::int64_t ldp, float* dst,
                       std::int64_t ldd, Activation act = Activation::none, bool add = false) {
    const HalfMasks hm = half_masks(nr);
    const __mmask16 mask[2] = {hm.lo, hm.hi};
    __m512 bias[2], ws[2];
    for (int h = 0; h < 2; ++h) {
        bias[h] = first && e.bias != nullptr ? _mm512_maskz_loadu_ps(mask[h], e.bias + col0 + 16 * h) : _mm512_setzero_ps();
        ws[h] = e.wscale != nullptr ? _mm512_maskz_loadu_ps(mask[h], e.wscale + col0 + 16 * h) : _mm512_setzero_ps();
    }
    #pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
        if (i >= mr) break;
        #pragma GCC unroll 16
        for (int h = 0; h < 2; ++h) {
            __m512 v;
            if constexpr (Op::kInt) {
                // (sum of (w + 128) * x - 128 * sum of x) * x scale * w scale
                const __m512i corr = _mm512_set1_epi32(128 * e.xsum[row0 + i]);
                v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][h], corr));
                v = _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(e.xscale[row0 + i])), ws[h]);
            } else {
                v = e.wscale != nullptr ? _mm512_mul_ps(acc[i][h], ws[h]) : acc[i][h];
            }
            v = _mm512_add_ps(v, first ? bias[h] : _mm512_maskz_loadu_ps(mask[h], prev + i * ldp + 16 * h));
            if (act != Activation::none) v = v512::activate(act, v);
            if (add) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask[h], dst + i * ldd + 16 * h), v);
            _mm512_mask_storeu_ps(dst + i * ldd + 16 * h, mask[h], v);
        }
    }
}


/// A row of x rounded to bfloat16 (vcvtne2ps2bf16: nearest even), every element through the
/// same instruction (the tail masked) so the result does not depend on its position.
inline void round_row_bf16(const float* x, std::int64_t k, std::uint16_t* h) {
    for (std::int64_t t = 0; t < k; t += 32) {
        const std::int64_t m = std::min<std::int64_t>(32, k - t);
        const HalfMasks hm = half_masks(m);
        const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hm.hi, x + t + 16), _mm512_maskz_loadu_ps(hm.lo, x + t));
        const __mmask32 mask = m >= 32 ? ~__mmask32(0) : static_cast<__mmask32>((1u << m) - 1);
        _mm512_mask_storeu_epi16(h + t, mask, reinterpret_cast<const __m512i&>(v));
    }
}

/// quantize_row for a row whose max |x| is known (amax, exactly as quantize_row finds it; the
/// row's largest |x| whatever the order it is found in): one pass over x instead of two.
inline float quantize_row_max(const float* x, std::int64_t k, float amax, std::int8_t* q) {
    const float scale = amax > 0 ? amax / 127.0f : 1.0f, inv = 1.0f / scale;
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    std::int64_t t = 0;
    for (; t + 16 <= k; t += 16) {
        __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + t), vinv));
        v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q + t), _mm512_cvtepi32_epi8(v));
    }
    for (; t < k; ++t) {
        // Clamped as a float first: inf or NaN from a broken model file must not reach the int
        // conversion (undefined behaviour); NaN gives -127 as the vector path's does.
        const float f = std::nearbyint(x[t] * inv);
        const int v = f >= 127.0f ? 127 : f > -127.0f ? static_cast<int>(f) : -127;
        q[t] = static_cast<std::int8_t>(v);
    }
    return scale;
}

/// A row of x quantized to int8: symmetric scale max|x| / 127 (1 for an all-zero row), round
/// half to even (the default MXCSR mode, as std::nearbyint), |q| <= 127. Returns the scale.
inline float quantize_row(const float* x, std::int64_t k, std::int8_t* q) {
    __m512 vmax = _mm512_setzero_ps();
    std::int64_t t = 0;
    for (; t + 16 <= k; t += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(x + t)));
    float amax = _mm512_reduce_max_ps(vmax);
    for (; t < k; ++t) amax = std::max(amax, std::fabs(x[t]));
    return quantize_row_max(x, k, amax, q);
}

/// Transposes a 16 x 16 block of 32-bit values held in r[0..16) (row i = r[i]) in place.
inline void transpose16(__m512i (&r)[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    // r[4q + j] now holds, in each 128-bit lane L, column 4L + {0..3}... of rows 4q..4q+3
    // in the order j = (0: cols 0, 1: col 1, 2: col 2, 3: col 3) of that lane.
    for (int i = 0; i < 4; ++i) {
        t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; ++i) {
        r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xDD);
    }
}

/// Packs x (float32, row stride ldx) as G-value units: G = 1 float32, 2 bfloat16 (round to
/// nearest even), 4 int8 (symmetric per-row scale max|x| / 127, round half to even), into
/// `ws` (grown as needed): written by this call's threads, then read by the product's.
inline PackedX pack_x(const float* x, std::int64_t n, std::int64_t k, std::int64_t ldx, int g, PackedXBuffers& ws,
                      ThreadPool* pool) {
    PackedX p;
    p.n = n;
    p.ku = units(k, g);
    p.slivers = (n + MR - 1) / MR;
    p.nblocks = blocks(p.ku);
    auto grow = [](auto& v, std::int64_t size) {
        if (static_cast<std::int64_t>(v.size()) < size) v.resize(static_cast<std::size_t>(size));
    };
    grow(ws.units, p.nblocks * p.block_stride());
    std::uint32_t* data = ws.units.data();
    std::int32_t* xsum = nullptr;
    float* xscale = nullptr;
    if (g == 4) {
        grow(ws.xsum, p.nblocks * p.slivers * MR);
        grow(ws.xscale, n);
        xsum = ws.xsum.data();
        xscale = ws.xscale.data();
    }
    p.data = data;
    p.xsum = xsum;
    p.xscale = xscale;
    // float32: each sliver's MR rows are read 16 values at a time (masked past k) and moved
    // into place through a 16 x 16 transpose (rows MR..15, and rows past n, zero; only MR lanes
    // stored), with no staging copy: at AVX-512 an image's pack_x, its row copies and their
    // buffers' allocation went from 3.6% of its time to 2.9%, the image ~1.5% faster (Intel
    // Xeon with AMX, alternating runs).
    if (g == 1) {
        parallel_chunks(pool, p.slivers, 1, [&](std::int64_t s0, std::int64_t s1) {
            for (std::int64_t s = s0; s < s1; ++s) {
                const std::int64_t r0 = s * MR, rows = std::min<std::int64_t>(MR, n - r0);
                for (std::int64_t b = 0; b < p.nblocks; ++b) {
                    std::uint32_t* dst = data + b * p.block_stride() + s * p.sliver_stride();
                    const std::int64_t units_here = std::min(p.ku, (b + 1) * KU) - b * KU;
                    for (std::int64_t u = 0; u < units_here; u += 16) {
                        const std::int64_t cnt = std::min<std::int64_t>(16, units_here - u);
                        const __mmask16 m = static_cast<__mmask16>(cnt >= 16 ? 0xFFFFu : (1u << cnt) - 1);
                        const float* src = x + r0 * ldx + b * KU + u;
                        __m512i v[16];
                        for (int i = 0; i < 16; ++i)
                            v[i] = i < rows ? _mm512_maskz_loadu_epi32(m, src + i * ldx) : _mm512_setzero_si512();
                        transpose16(v);
                        for (std::int64_t c = 0; c < cnt; ++c)
                            _mm512_mask_storeu_epi32(dst + (u + c) * MR, static_cast<__mmask16>((1u << MR) - 1), v[c]);
                    }
                }
            }
        });
        return p;
    }
    // bfloat16 and int8: each sliver's MR rows are made as units (rounded or quantized) into a
    // staging block, zero past the last unit up to a whole group of 16, then moved into place
    // the same way.
    const std::int64_t kup = (p.ku + 15) / 16 * 16;
    parallel_chunks(pool, p.slivers, 1, [&](std::int64_t s0, std::int64_t s1) {
        std::vector<std::uint32_t> rows(static_cast<std::size_t>(MR * kup));
        for (std::int64_t s = s0; s < s1; ++s) {
            for (int i = 0; i < MR; ++i) {
                const std::int64_t r = s * MR + i;
                std::uint32_t* row = rows.data() + i * kup;
                if (r >= n) {  // rows past the end of the last sliver: zeros
                    std::memset(row, 0, static_cast<std::size_t>(kup) * 4);
                } else if (g == 2) {
                    auto* h = reinterpret_cast<std::uint16_t*>(row);
                    round_row_bf16(x + r * ldx, k, h);
                    std::memset(h + k, 0, static_cast<std::size_t>(2 * kup - k) * 2);
                } else {
                    auto* q = reinterpret_cast<std::int8_t*>(row);
                    xscale[r] = quantize_row(x + r * ldx, k, q);
                    std::memset(q + k, 0, static_cast<std::size_t>(4 * kup - k));
                }
                if (g == 4) {  // the sum of each k block's int8 values (0 past k and for padding rows)
                    const auto* q = reinterpret_cast<const std::int8_t*>(row);
                    for (std::int64_t b = 0; b < p.nblocks; ++b) {
                        __m512i acc = _mm512_setzero_si512();
                        const std::int64_t e = std::min(4 * kup, (b + 1) * KU * 4);
                        for (std::int64_t t = b * KU * 4; t < e; t += 16)
                            acc = _mm512_add_epi32(acc, _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + t))));
                        xsum[b * p.slivers * MR + r] = _mm512_reduce_add_epi32(acc);
                    }
                }
            }
            for (std::int64_t b = 0; b < p.nblocks; ++b) {
                std::uint32_t* dst = data + b * p.block_stride() + s * p.sliver_stride();
                const std::int64_t units_here = std::min(p.ku, (b + 1) * KU) - b * KU;
                for (std::int64_t u = 0; u < units_here; u += 16) {
                    __m512i v[16];
                    for (int i = 0; i < 16; ++i)
                        v[i] = i < MR ? _mm512_loadu_si512(rows.data() + i * kup + b * KU + u) : _mm512_setzero_si512();
                    transpose16(v);
                    const std::int64_t cnt = std::min<std::int64_t>(16, units_here - u);
                    for (std::int64_t c = 0; c < cnt; ++c)
                        _mm512_mask_storeu_epi32(dst + (u + c) * MR, static_cast<__mmask16>((1u << MR) - 1), v[c]);
                }
            }
        }
    });
    return p;
}


/// Units of a row that load_units16 may read: those whose values all lie inside the row
/// (0 for a kind this build has no vector loader for).
inline std::int64_t vector_units(const PanelSource& w) {
    switch (w.kind) {
        case Source::bf16_pairs: return w.k / 2;
        case Source::i8_quads: return w.k / 4;
        case Source::i8_bf16: return w.k / 2;
        default: return w.k;
    }
}

/// Units [t, t + 16) of W's row r as one vector, made as unit_of makes each
/// (t + 16 <= vector_units(w)).
inline __m512i load_units16(const PanelSource& w, std::int64_t r, std::int64_t t) {
    switch (w.kind) {
        case Source::f32:
            return _mm512_loadu_si512(static_cast<const float*>(w.data) + r * w.stride() + t);
        case Source::bf16_pairs:
            return _mm512_loadu_si512(static_cast<const std::uint16_t*>(w.data) + r * w.stride() + 2 * t);
        case Source::i8_quads:
            return _mm512_xor_si512(_mm512_loadu_si512(static_cast<const std::int8_t*>(w.data) + r * w.stride() + 4 * t),
                                    _mm512_set1_epi8(static_cast<char>(0x80)));
        case Source::bf16_widen: {
            const auto* p = static_cast<const std::uint16_t*>(w.data) + r * w.stride() + t;
            return _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16);
        }
        case Source::i8_widen: {
            const auto* p = static_cast<const std::int8_t*>(w.data) + r * w.stride() + t;
            const __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
            return _mm512_castps_si512(_mm512_mul_ps(f, _mm512_set1_ps(w.scale[r])));
        }
        case Source::i8_bf16: {
            const auto* p = static_cast<const std::int8_t*>(w.data) + r * w.stride() + 2 * t;
            const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
            const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16))));
            const __m512bh v = _mm512_cvtne2ps_pbh(hi, lo);
            return reinterpret_cast<const __m512i&>(v);
        }
        case Source::panels:
        case Source::bf16_panels_widen:
            break;  // not packed unit by unit
    }
    return _mm512_setzero_si512();  // not reached: vector_units is 0 where there is no loader
}

/// The float32 units [u0, u0 + kus) of rows [j, j + NR) from a bfloat16 panel layout (pairs of
/// values per unit): value u is the low half of pair u / 2 for even u, the high half for odd u.
/// j is a multiple of NR and u0 even; rows past the matrix are stored as zero.
inline void widen_bf16_panel(const PanelSource& w, std::int64_t j, std::int64_t u0, std::int64_t kus,
                             std::uint32_t* panel) {
    const std::uint32_t* src = stored_panel(w, j, 2);
    const std::int64_t ld = w.panel_rows;
    const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
    for (std::int64_t u = 0; u < kus; u += 2) {
        const std::uint32_t* pair = src + (u0 + u) / 2 * ld;
        for (int h = 0; h < 2; ++h) {
            const __m512i v = _mm512_load_si512(pair + 16 * h);
            _mm512_store_si512(panel + u * NR + 16 * h, _mm512_slli_epi32(v, 16));
            if (u + 1 < kus) _mm512_store_si512(panel + (u + 1) * NR + 16 * h, _mm512_and_si512(v, high));
        }
    }
}

/// Packs W rows [j, j + nr) (nr <= NR), units [u0, u0 + kus), into panel[unit][NR];
/// columns past nr are zero. Whole 16 x 16 blocks of units are loaded as vectors and
/// transposed; the rest (a row's last partial units) one unit at a time.
inline void pack_panel(const PanelSource& w, std::int64_t j, int nr, std::int64_t u0, std::int64_t kus,
                       std::uint32_t* panel) {
    if (w.kind == Source::bf16_panels_widen) {
        widen_bf16_panel(w, j, u0, kus, panel);
        return;
    }
    const std::int64_t full = vector_units(w);
    std::int64_t u = 0;
    for (; u + 16 <= kus && u0 + u + 16 <= full; u += 16) {
        for (int h = 0; h < 2; ++h) {
            __m512i r[16];
            for (int i = 0; i < 16; ++i) {
                const int jj = 16 * h + i;
                r[i] = jj < nr ? load_units16(w, j + jj, u0 + u) : _mm512_setzero_si512();
            }
            transpose16(r);
            for (int c = 0; c < 16; ++c) _mm512_store_si512(panel + (u + c) * NR + 16 * h, r[c]);
        }
    }
    for (; u < kus; ++u) {
        std::uint32_t* dst = panel + u * NR;
        for (int jj = 0; jj < NR; ++jj) dst[jj] = jj < nr ? unit_of(w, j + jj, u0 + u) : 0u;
    }
}


/// y = x . W^T (+ bias) through the packed kernel with the x already packed. A task keeps
/// its tiles' sums between k blocks in its slot's tile_sums of `ws`: [sliver][panel][MR][NR],
/// contiguous tiles, unlike y's rows (whose stride of `out` floats, 4 KB for 1024 columns,
/// puts a tile's 12 rows in one L1 set and made the read-add-write of partial sums cost as
/// much as a sixth of the product).
template <class Op>
inline void run(const PackedX& px, const PanelSource& w, std::int64_t out, const float* bias, const float* wscale,
                float* y, ThreadPool* pool, Workspace& ws, Activation act = Activation::none, bool add = false) {
    const std::int64_t cols = task_cols(px);
    const std::int64_t tasks = (out + cols - 1) / cols;
    const int kPanels = static_cast<int>(cols / NR);
    constexpr std::int64_t kTile = MR * NR;
    KernelBuffers* const slots = ws.slots(slot_count(pool, tasks));
    auto task = [&](std::int64_t t, int slot) {
        // The task's panels of this k block are packed once (16 KB each, in the slot's
        // buffer; used in place when W is stored in panels) and then run over the
        // slivers of x kSliverBlock at a time, so that for many rows (a batch of images) the
        // part of x in use stays in L2 while every panel passes over it. Sums of all but the
        // last k block go to the slot's tile buffer; the last block writes y.
        std::uint32_t* const panels =
            w.kind == Source::panels ? nullptr : aligned_at_least(slots[slot].panels, kPanels * KU * NR);
        float* const sums =
            px.nblocks > 1 ? aligned_at_least(slots[slot].tile_sums, px.slivers * kPanels * kTile) : nullptr;
        const std::int64_t j0 = t * cols, j1 = std::min(out, j0 + cols);
        for (std::int64_t b = 0; b < px.nblocks; ++b) {
            const std::int64_t u0 = b * KU, kus = std::min(px.ku, u0 + KU) - u0;
            const bool last = b + 1 == px.nblocks;
            Epilogue e;
            e.bias = bias;
            e.wscale = wscale;
            e.xscale = px.xscale;
            e.xsum = px.xsum != nullptr ? px.xsum + b * px.slivers * MR : nullptr;
            int np = 0;
            const std::uint32_t* panel_at[kMaxTaskPanels];
            std::int64_t ldb[kMaxTaskPanels];
            for (std::int64_t j = j0; j < j1; j += NR, ++np) {
                if (w.kind == Source::panels) {  // W's units are x's units: px.ku of them per row
                    ldb[np] = w.panel_rows;
                    panel_at[np] = stored_panel(w, j, Op::G) + u0 * ldb[np];
                } else {
                    std::uint32_t* const panel = panels + np * KU * NR;
                    pack_panel(w, j, static_cast<int>(std::min<std::int64_t>(NR, j1 - j)), u0, kus, panel);
                    panel_at[np] = panel;
                    ldb[np] = NR;
                }
            }
            // Panels used in place come from the mapped file, from memory on first use (and
            // the hardware prefetchers stop at each 4 KB page): each panel's next k block is
            // prefetched over the micro-tiles of its first pass, a unit row per step, so that
            // it streams in while this block computes (not the next task's first block: see
            // bench/RESULTS.md, "Measurements behind design choices"). So are the stored
            // bfloat16 panels that are widened: their next block's rows of pairs.
            const bool widened = w.kind == Source::bf16_panels_widen;
            const std::int64_t next_units = (w.kind == Source::panels || widened) && !last
                                                ? std::min(px.ku, u0 + 2 * KU) - (u0 + KU) : 0;
            const std::int64_t next_rows = widened ? (next_units + 1) / 2 : next_units;  // stored unit rows
            const std::int64_t first_pass = std::min(px.slivers, kSliverBlock);
            const std::int64_t per_tile = (next_rows + first_pass - 1) / first_pass;  // <= KU = kus
            for (std::int64_t s0 = 0; s0 < px.slivers; s0 += kSliverBlock) {
                const std::int64_t s1 = std::min(px.slivers, s0 + kSliverBlock);
                for (int p = 0; p < np; ++p) {
                    const std::int64_t j = j0 + p * NR;
                    const int nr = static_cast<int>(std::min<std::int64_t>(NR, j1 - j));
                    for (std::int64_t s = s0; s < s1; ++s) {
                        const std::int64_t f0 = std::min(next_rows, s * per_tile);
                        const std::int64_t nf = s0 == 0 ? std::min(next_rows, f0 + per_tile) - f0 : 0;
                        const std::int64_t ldf = widened ? w.panel_rows : ldb[p];
                        const std::uint32_t* fetch = nf <= 0 ? nullptr
                                                     : widened ? stored_panel(w, j, 2) + ((u0 + KU) / 2 + f0) * ldf
                                                               : panel_at[p] + (KU + f0) * ldf;
                        typename Op::Acc acc[MR][2];
                        #pragma GCC unroll 16
                        for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = Op::zero();
                        const int mr = static_cast<int>(std::min<std::int64_t>(MR, px.n - s * MR));
                        const std::uint32_t* const a = px.at(b, s);
                        if (mr <= 4) micro<Op, 4>(a, panel_at[p], ldb[p], kus, acc, fetch, nf, ldf);
                        else if (mr <= 6) micro<Op, 6>(a, panel_at[p], ldb[p], kus, acc, fetch, nf, ldf);
                        else if (mr <= 8) micro<Op, 8>(a, panel_at[p], ldb[p], kus, acc, fetch, nf, ldf);
                        else micro<Op>(a, panel_at[p], ldb[p], kus, acc, fetch, nf, ldf);
                        float* tile = sums != nullptr ? sums + (s * kPanels + p) * kTile : nullptr;
                        if (last)
                            store_tile<Op>(acc, b == 0, e, s * MR, j, mr, nr, tile, NR, y + s * MR * out + j, out, act,
                                           add);
                        else
                            store_tile<Op>(acc, b == 0, e, s * MR, j, mr, nr, tile, NR, tile, NR);
                    }
                }
            }
        }
    };
    parallel_for_slots(pool, tasks, task);
}

/// y (=, or += with `add`) act(x . W^T + bias) for x packed as px (units of unit_values(w.type)
/// values), W of any stored type (see gemm.hpp's WeightType).
inline void run_weight(const PackedX& px, std::int64_t k, const WeightMatrix& w, const float* bias, std::int64_t out,
                       float* y, ThreadPool* pool, Workspace& ws, Activation act, bool add) {
    PanelSource src{Source::f32, w.data, k, nullptr};
    src.panel_rows = w.panel_rows;
    switch (w.type) {
        case WeightType::f32:
            if (w.panels) src.kind = Source::panels;
            return run<F32Op>(px, src, out, bias, nullptr, y, pool, ws, act, add);
        case WeightType::bf16_dot:
            src.kind = w.panels ? Source::panels : Source::bf16_pairs;
            return run<Bf16Op>(px, src, out, bias, nullptr, y, pool, ws, act, add);
        case WeightType::bf16:
            src.kind = w.panels ? Source::bf16_panels_widen : Source::bf16_widen;
            return run<F32Op>(px, src, out, bias, nullptr, y, pool, ws, act, add);
        case WeightType::q8_dot:
            src.kind = Source::i8_quads;
            return run<I8Op>(px, src, out, bias, w.scale, y, pool, ws, act, add);
        case WeightType::q8_bf16:
            src.kind = Source::i8_bf16;
            return run<Bf16Op>(px, src, out, bias, w.scale, y, pool, ws, act, add);
        case WeightType::q8:
            src.kind = Source::i8_widen;
            src.scale = w.scale;
            return run<F32Op>(px, src, out, bias, nullptr, y, pool, ws, act, add);
    }
}

/// The whole product for a weight matrix of any stored type (see gemm.hpp's WeightType).
/// Called by kernels::linear only, which has checked the CPU for the weight type's instructions.
/// `act` is applied as the tiles are written.
ALTCLIP_KERNEL_ENTRY inline void linear(const float* x, std::int64_t n, std::int64_t k, const WeightMatrix& w,
                                        const float* bias, std::int64_t out, float* y, ThreadPool* pool,
                                        Workspace& workspace, Activation act = Activation::none) {
    const PackedX px = pack_x(x, n, k, k, unit_values(w.type), workspace.caller().x, pool);
    run_weight(px, k, w, bias, out, y, pool, workspace, act, false);
}

/// kernels::linear_many's products (their types runnable here, all of one unit size): x packed
/// once for them all, each residual added to y as its tiles are written. The same numbers as
/// one linear() each and the residual's pass.
ALTCLIP_KERNEL_ENTRY inline void linear_many(const float* x, std::int64_t n, std::int64_t k, const Product* products,
                                             int count, ThreadPool* pool, Workspace& workspace) {
    const PackedX px = pack_x(x, n, k, k, unit_values(products[0].weight->type), workspace.caller().x, pool);
    for (int i = 0; i < count; ++i) {
        const Product& p = products[i];
        run_weight(px, k, *p.weight, p.bias, p.out, p.y, pool, workspace, p.act, p.add);
    }
}

}  // namespace altclip::kernels::packed
ALTCLIP_AVX512_END
#endif  // ALTCLIP_X86
