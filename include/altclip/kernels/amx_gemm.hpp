// altclip's own AMX matrix products.
//
// The ViT's (linear_s8 for WeightType::q8_dot, linear_bf16 for bf16_dot; one kernel,
// tile_columns, for both): W copied once at load into B tiles of 1 KB (PackedS8: int8, for
// tdpbssd; PackedBf16: bfloat16 pairs, for tdpbf16ps); a bf16 text's many rows (a batch of
// labels) read the file's panels in place. x is quantized per row to int8 as the q8_dot kernels
// quantize it (int32 sums, then their epilogue act(float(sum) * x scale * w scale + bias): the
// same numbers as the VNNI kernels and oneDNN's int8 matmul), or rounded to bfloat16 as the
// bf16_dot kernels round it (float32 sums), into A tiles. Each thread takes a range of pairs of
// 16-column blocks for every row of x, 2 x 2 tiles at a time (32 rows x 32 columns), k in
// chunks and rows in blocks that stay in L2 (tile_plan); a block's sums are turned into y's
// floats while the tiles sum the next. Measured against oneDNN 2.6 (one single-threaded
// primitive per thread, the way linear() called it) on an image's int8 shapes with the weights
// cold: 1.3-1.9x (bench/RESULTS.md).
//
// The text tower's (WeightType::q8_bf16; linear_q8_bf16): y = act(x . W^T * scale +
// bias) with W int8 [out, k] row-major (per-row scale), x rounded to bfloat16 (nearest even, as
// the avx512_bf16 kernels round it for many rows) and W's int8 values widened to bfloat16,
// which is exact, summed in float32 by the tiles. AMX multiplies bf16 by bf16 or int8 by int8,
// not int8 by bf16: the widening is done here, 64 rows of W x 256 values of k at a time into
// tiles in the slot's buffer (32 KB: in L1 while the tiles read them), each value of W widened
// once per call whatever the number of rows of x.
//
// Computed as y^T = W . x^T, so that W's rows are the A tiles as they lie (16 rows x 32 k) and
// x, small, is the one transposed: B tiles of x^T hold pairs of k x 16 rows of x. C tiles are
// 16 rows of W x 16 rows of x, gathered by columns into y's rows on the way out.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "activation.hpp"
#include "amx_tiles.hpp"
#include "buffer.hpp"
#include "cpu.hpp"
#include "gemm_packed.hpp"
#include "lanes_avx512.hpp"
#include "ops.hpp"  // ops_detail::layer_norm_rows_avx512: a RowNorm's rows, as kernels::layer_norm makes them
#include "thread_pool.hpp"
#include "weight_matrix.hpp"  // RowNorm

namespace altclip::kernels::amx {

/// Frees what aligned_array gave.
struct FreeAligned {
    void operator()(void* p) const { std::free(p); }
};
/// `bytes` of memory for a copy of weights, 64-byte aligned; throws std::bad_alloc.
template <class T>
std::unique_ptr<T, FreeAligned> aligned_array(std::size_t bytes) {
    std::unique_ptr<T, FreeAligned> p(static_cast<T*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
    if (!p) throw std::bad_alloc();
    return p;
}

/// An int8 weight matrix W [out, k] (per-row scale `scale`) as tdpbssd's B tiles: blocks of 16
/// rows of W (an even count, the last ones zero past `out`), each [kp / 64 steps][16 groups of
/// 4 k][16 rows][4 k] bytes, kp = k rounded up to 64 (zeros past k). A block's tile for one
/// step is 1 KB, 64-byte aligned.
struct PackedS8 {
    std::int64_t out = 0, k = 0, kp = 0, blocks = 0;
    const float* scale = nullptr;  // [out], the model file's
    std::unique_ptr<std::int8_t, FreeAligned> data;

    std::int64_t steps() const { return kp / 64; }
    const std::int8_t* block(std::int64_t b) const { return data.get() + b * steps() * 1024; }
};

/// W [out, k] row-major int8 as PackedS8, blocks [b0, b1) of it written (the whole matrix:
/// make_packed_s8 then pack_s8_blocks over all blocks, in parts on several threads).
inline PackedS8 make_packed_s8(std::int64_t out, std::int64_t k, const float* scale) {
    PackedS8 p;
    p.out = out;
    p.k = k;
    p.kp = (k + 63) / 64 * 64;
    p.blocks = (out + 31) / 32 * 2;
    p.scale = scale;
    const auto bytes = static_cast<std::size_t>(p.blocks * p.steps() * 1024);
    p.data = aligned_array<std::int8_t>(bytes);
    return p;
}
inline void pack_s8_blocks(const std::int8_t* w, PackedS8& p, std::int64_t b0, std::int64_t b1) {
    const std::int64_t steps = p.steps(), k = p.k;
    for (std::int64_t b = b0; b < b1; ++b) {
        std::int8_t* dst = p.data.get() + b * steps * 1024;
        for (std::int64_t c = 0; c < 16; ++c) {
            const std::int64_t j = b * 16 + c;
            for (std::int64_t g = 0; g < steps * 16; ++g) {  // groups of 4 k
                std::int8_t* d = dst + g * 64 + c * 4;       // (step g / 16, group g % 16)
                const std::int64_t t0 = g * 4;
                if (j < p.out && t0 + 4 <= k) {
                    std::memcpy(d, w + j * k + t0, 4);
                } else {
                    for (std::int64_t t = 0; t < 4; ++t) d[t] = j < p.out && t0 + t < k ? w[j * k + t0 + t] : 0;
                }
            }
        }
    }
}

/// Whether linear_bf16 runs a product with these bf16 weights in panels: k a whole number of
/// 32-value steps, panels of a multiple of 16 rows (the file's 64 or 32, PackedBf16's 16).
inline constexpr bool bf16_panels_supported(std::int64_t k, std::int64_t panel_rows) {
    return k > 0 && k % 32 == 0 && panel_rows > 0 && panel_rows % 16 == 0;
}

/// A bfloat16 weight matrix W [out, k] for linear_bf16 at its fastest: panels of 16 rows
/// ([out / 16][k / 2][16] 32-bit units of two bfloat16 of consecutive k, zeros past out), so
/// that each B tile (16 pairs of k x 16 columns) is 1 KB in one piece, 64-byte aligned. Copied
/// once at load from the file's panels of 64 or 32 rows, whose tiles lie 256 or 128 bytes a
/// row apart: one image's bf16 products 1.21 -> 1.37 TFLOP/s (the measurement of TilePlan's
/// comment).
struct PackedBf16 {
    std::int64_t out = 0, k = 0, blocks = 0;  // blocks of 16 rows, an even count
    std::unique_ptr<std::uint32_t, FreeAligned> data;
    static constexpr std::int64_t kPanelRows = 16;
};
inline PackedBf16 make_packed_bf16(std::int64_t out, std::int64_t k) {
    PackedBf16 p;
    p.out = out;
    p.k = k;
    p.blocks = (out + 31) / 32 * 2;
    const auto bytes = static_cast<std::size_t>(p.blocks * 16 * (k / 2) * 4);
    p.data = aligned_array<std::uint32_t>(bytes);
    return p;
}
/// Blocks [b0, b1) of p from W in the file's panels of pr rows (a multiple of 16).
inline void pack_bf16_blocks(const std::uint32_t* w, std::int64_t pr, PackedBf16& p, std::int64_t b0, std::int64_t b1) {
    const std::int64_t ku = p.k / 2;
    for (std::int64_t b = b0; b < b1; ++b) {
        std::uint32_t* dst = p.data.get() + b * 16 * ku;
        const std::int64_t j0 = b * 16, valid = std::max<std::int64_t>(0, std::min<std::int64_t>(16, p.out - j0));
        if (valid == 0) {
            std::memset(dst, 0, static_cast<std::size_t>(16 * ku) * 4);
            continue;
        }
        const std::uint32_t* src = w + (j0 / pr) * ku * pr + j0 % pr;
        for (std::int64_t u = 0; u < ku; ++u) {
            std::memcpy(dst + u * 16, src + u * pr, static_cast<std::size_t>(valid) * 4);
            std::memset(dst + u * 16 + valid, 0, static_cast<std::size_t>(16 - valid) * 4);
        }
    }
}

}  // namespace altclip::kernels::amx

#if ALTCLIP_X86
#include <immintrin.h>

ALTCLIP_AMX_BEGIN
namespace altclip::kernels::amx {

/// Whether linear_q8_bf16 runs this product (k a whole number of 32-value steps).
inline constexpr bool q8_bf16_supported(std::int64_t k) { return k > 0 && k % 32 == 0; }

/// Rows [j0, j0 + 64) of W (rows past `out` as zeros), steps [s0, s0 + ns) of them (32 values
/// each), widened to bfloat16 A tiles: panel [ns steps][4 blocks of 16 rows][16 rows][16
/// units]. The same rows' next `ns` steps are prefetched (to L2) as these are read.
ALTCLIP_KERNEL_ENTRY inline void widen_panel(const std::int8_t* w, std::int64_t out, std::int64_t k, std::int64_t j0,
                                             std::int64_t s0, std::int64_t ns, std::uint32_t* panel) {
    const bool more = (s0 + ns) * 32 < k;
    for (int r = 0; r < 64; ++r) {
        const std::int64_t j = j0 + r;
        const int blk = r / 16, row = r % 16;
        if (j >= out) {
            for (std::int64_t s = 0; s < ns; ++s)
                _mm512_store_si512(panel + (s * 4 + blk) * 256 + row * 16, _mm512_setzero_si512());
            continue;
        }
        const std::int8_t* src = w + j * k + s0 * 32;
        // The next chunk of this row, or after the last the first of the row 64 on (the next
        // task's, when it is this thread's).
        const std::int8_t* ahead = more ? src + ns * 32 : j + 64 < out ? w + (j + 64) * k : nullptr;
        if (ahead != nullptr)
            for (std::int64_t b = 0; b < ns * 32; b += 64) _mm_prefetch(reinterpret_cast<const char*>(ahead + b), _MM_HINT_T1);
        for (std::int64_t s = 0; s < ns; ++s) {
            const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + s * 32))));
            const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + s * 32 + 16))));
            _mm512_store_si512(panel + (s * 4 + blk) * 256 + row * 16, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
}

/// x [n, k] rounded to bfloat16 as B tiles of x^T: [16-row block of x][k / 32 steps][16 pairs
/// of k][16 rows] units, rows past n zeros.
ALTCLIP_KERNEL_ENTRY inline void x_tiles(const float* x, std::int64_t n, std::int64_t k, std::uint32_t* xt) {
    const std::int64_t steps = k / 32, blocks = (n + 15) / 16;
    alignas(64) std::uint32_t units[16];
    for (std::int64_t b = 0; b < blocks; ++b)
        for (int row = 0; row < 16; ++row) {
            const std::int64_t r = b * 16 + row;
            for (std::int64_t s = 0; s < steps; ++s) {
                std::uint32_t* tile = xt + (b * steps + s) * 256;
                if (r >= n) {
                    for (int p = 0; p < 16; ++p) tile[p * 16 + row] = 0;
                    continue;
                }
                const float* src = x + r * k + s * 32;
                _mm512_store_si512(units, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + 16), _mm512_loadu_ps(src)));
                for (int p = 0; p < 16; ++p) tile[p * 16 + row] = units[p];
            }
        }
}

/// Columns [j, j + 16) of y (those < out): their mask, and the scale (nullptr: none) and the
/// bias (nullptr: zeros) loaded under it.
struct Columns16 {
    __mmask16 mask;
    __m512 scale, bias;
};
inline Columns16 columns16(std::int64_t j, std::int64_t out, const float* scale, const float* bias) {
    const __mmask16 m = out - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (out - j)) - 1u);
    return {m, scale != nullptr ? _mm512_maskz_loadu_ps(m, scale + j) : _mm512_setzero_ps(),
            bias != nullptr ? _mm512_maskz_loadu_ps(m, bias + j) : _mm512_setzero_ps()};
}

/// y[0, 16) under mask m = act(t), or with `add` y + t (a residual's sum, as a pass over y
/// would make it).
inline void store_out(float* y, __mmask16 m, __m512 t, Activation act, bool add) {
    if (add) {
        _mm512_mask_storeu_ps(y, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y), t));
    } else {
        _mm512_mask_storeu_ps(y, m, v512::activate(act, t));
    }
}

/// y's rows [i0, i0 + 16) x columns [j0, j0 + 64) from 4 C tiles [4][16 rows of W][16 rows of
/// x] (float32 sums): act(sum * scale + bias), rows of x past n and rows of W past out left out.
ALTCLIP_KERNEL_ENTRY inline void write_out(const float* c, std::int64_t i0, std::int64_t n, std::int64_t j0,
                                           std::int64_t out, const float* scale, const float* bias, Activation act,
                                           float* y) {
    const __m512i by_row = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                              _mm512_set1_epi32(16));
    for (int blk = 0; blk < 4; ++blk) {
        const std::int64_t jb = j0 + blk * 16;
        if (jb >= out) break;
        const Columns16 cols = columns16(jb, out, scale, bias);
        for (int col = 0; col < 16 && i0 + col < n; ++col) {
            const __m512 sum = _mm512_i32gather_ps(by_row, c + blk * 256 + col, 4);
            const __m512 v = _mm512_add_ps(_mm512_mul_ps(sum, cols.scale), cols.bias);
            store_out(y + (i0 + col) * out + jb, cols.mask, v, act, false);
        }
    }
}

/// Steps of k per widened chunk of linear_q8_bf16: 64 rows x 256 values, 32 KB of bfloat16
/// tiles, stay in L1 while the tiles read them (chunks of 4 steps as fast, of 16 slower).
inline constexpr std::int64_t kQ8WidenSteps = 8;

/// y[n, out] = act(x[n, k] . W^T * scale + bias) for int8 W [out, k] (row scales `scale`), on
/// the pool: each thread a contiguous range of W's 64-row groups, each group's k in chunks of
/// kQ8WidenSteps steps, widened (the next chunk's int8 bytes prefetched meanwhile: after a
/// group's last, the next group's first), then multiplied; the sums of 16 rows of x stay in
/// the tiles between chunks, those of more rows are stored between them. Widening a group's
/// whole rows first (a 512 KB panel for k = 4096) sent every store to L2 while the int8 rows
/// came from memory unprefetched: a 16-token q8 caption's products took 31.6 ms where reading
/// their bytes takes 10.6 (Intel Xeon with AMX, 2 threads). k must be q8_bf16_supported.
inline void linear_q8_bf16(const float* x, std::int64_t n, std::int64_t k, const std::int8_t* w, const float* scale,
                           const float* bias, std::int64_t out, float* y, ThreadPool* pool, Workspace& workspace,
                           Activation act) {
    using packed::aligned_at_least;
    const std::int64_t steps = k / 32, xblocks = (n + 15) / 16, groups = (out + 63) / 64;
    const std::int64_t chunk = std::min(steps, kQ8WidenSteps);
    const long stride = 64;
    std::uint32_t* const xt = aligned_at_least(workspace.caller().amx_x, xblocks * steps * 256);
    x_tiles(x, n, k, xt);
    // W's rows [j0, j0 + 64) for every row of x, with the slot's buffers: the widened chunk,
    // the output tiles (c) and, for more than 16 rows of x, their sums between chunks.
    auto group = [&](std::int64_t j0, std::uint32_t* panel, float* c, float* partial) {
        for (std::int64_t s0 = 0; s0 < steps; s0 += chunk) {
            const std::int64_t ns = std::min(chunk, steps - s0);
            const bool first = s0 == 0, last = s0 + ns == steps;
            __asm__ volatile("" ::: "memory");  // the last chunk's tile loads (asm) before these stores
            widen_panel(w, out, k, j0, s0, ns, panel);
            __asm__ volatile("" ::: "memory");  // the tiles' loads after the stores above
            for (std::int64_t b = 0; b < xblocks; ++b) {
                float* const sums = partial + b * 4 * 256;
                if (first) {
                    _tile_zero(0);
                    _tile_zero(1);
                    _tile_zero(2);
                    _tile_zero(3);
                } else if (xblocks > 1) {
                    _tile_loadd(0, sums, stride);
                    _tile_loadd(1, sums + 256, stride);
                    _tile_loadd(2, sums + 512, stride);
                    _tile_loadd(3, sums + 768, stride);
                }
                const std::uint32_t* xs = xt + (b * steps + s0) * 256;
                for (std::int64_t s = 0; s < ns; ++s) {
                    const std::uint32_t* a = panel + s * 4 * 256;
                    _tile_loadd(5, xs + s * 256, stride);
                    _tile_loadd(4, a, stride);
                    _tile_dpbf16ps(0, 4, 5);
                    _tile_loadd(6, a + 256, stride);
                    _tile_dpbf16ps(1, 6, 5);
                    _tile_loadd(7, a + 512, stride);
                    _tile_dpbf16ps(2, 7, 5);
                    _tile_loadd(4, a + 768, stride);
                    _tile_dpbf16ps(3, 4, 5);
                }
                if (!last && xblocks == 1) continue;  // the sums stay in the tiles
                float* const dst = last ? c : sums;
                _tile_stored(0, dst, stride);
                _tile_stored(1, dst + 256, stride);
                _tile_stored(2, dst + 512, stride);
                _tile_stored(3, dst + 768, stride);
                if (!last) continue;
                __asm__ volatile("" ::: "memory");  // the write-out's vector loads after the tile stores
                write_out(c, b * 16, n, j0, out, scale, bias, act, y);
            }
        }
    };
    const std::int64_t tasks = std::min<std::int64_t>(groups, pool != nullptr ? pool->size() : 1);
    KernelBuffers* const slots = workspace.slots(slot_count(pool, tasks));
    parallel_for_slots(pool, tasks, [&](std::int64_t t, int slot) {
        std::uint32_t* const panel = aligned_at_least(slots[slot].amx_w, chunk * 4 * 256);
        float* const c = aligned_at_least(slots[slot].amx_out, (1 + (xblocks > 1 ? xblocks : 0)) * 4 * 256);
        load_tile_config();
        for (std::int64_t g = groups * t / tasks; g < groups * (t + 1) / tasks; ++g) group(g * 64, panel, c, c + 4 * 256);
        _tile_release();
    });
}

/// x's row r, or with `norm` layer_norm of it written to tmp [k] (the same numbers as
/// kernels::layer_norm's pass at Isa::avx512 and up).
inline const float* source_row(const float* x, std::int64_t k, std::int64_t r, const RowNorm* norm, float* tmp) {
    if (norm == nullptr) return x + r * k;
    ops_detail::layer_norm_rows_avx512(x + r * k, 0, 1, k, norm->gamma, norm->beta, norm->eps, tmp);
    return tmp;
}

/// Rows [r0, r1) of A in tiles ([16-row tile][step][16 rows][64 bytes], step s: k values
/// [64 s, 64 s + 64)): x's rows (or layer_norm of them) quantized per row
/// (packed::quantize_row, the q8_dot kernels' rounding; with `amax`, each row's largest |x|
/// known: packed::quantize_row_max), zeros past k; rows past n all zeros, scale 0. tmp: k
/// floats (with a norm); q: kp bytes.
ALTCLIP_KERNEL_ENTRY inline void quantize_rows_s8(const float* x, std::int64_t n, std::int64_t k, std::int64_t kp,
                                                  std::int64_t r0, std::int64_t r1, std::int8_t* a, float* xscale,
                                                  const RowNorm* norm, const float* amax, float* tmp, std::int8_t* q) {
    const std::int64_t steps = kp / 64;
    for (std::int64_t r = r0; r < r1; ++r) {
        std::int8_t* const row = a + (r / 16) * steps * 1024 + (r % 16) * 64;  // step s at + s * 1024
        if (r < n) {
            const float* src = source_row(x, k, r, norm, tmp);
            xscale[r] = amax != nullptr ? packed::quantize_row_max(src, k, amax[r], q) : packed::quantize_row(src, k, q);
            std::memset(q + k, 0, static_cast<std::size_t>(kp - k));
            for (std::int64_t s = 0; s < steps; ++s) std::memcpy(row + s * 1024, q + s * 64, 64);
        } else {
            for (std::int64_t s = 0; s < steps; ++s) std::memset(row + s * 1024, 0, 64);
            xscale[r] = 0;
        }
    }
}

/// Asks for y's rows [r0, r0 + rows) x columns [j0, j0 + 32) to be brought into the cache for
/// writing while the tiles sum them (the write-out then waits neither for the lines nor, for a
/// residual, for their values).
inline void prefetch_block(const float* y, std::int64_t r0, std::int64_t rows, std::int64_t j0, std::int64_t out) {
    const std::int64_t j1 = std::min(out, j0 + 32);
    for (std::int64_t r = r0; r < r0 + rows; ++r) {
        const float* row = y + r * out;
        // prefetchw (every CPU with AMX has it), as asm: GCC drops the builtin's write hint here.
        __asm__ volatile("prefetchw %0" : : "m"(row[j0]));
        if (j0 + 16 < j1) __asm__ volatile("prefetchw %0" : : "m"(row[j0 + 16]));
    }
}

/// y's rows [r0, r0 + rows) x columns [j0, j0 + 32) (those < out) from int32 sums c [32][32]:
/// act(float(sum) * x scale * w scale + bias), the operations of the q8_dot epilogue in its
/// order (onednn::round::epilogue_s8_avx512), so the same bits; with `add`, y + that (the
/// residual's sum, as the model's pass over y would make it). With `rowmax` (not with `add`),
/// each row's largest |y| among these columns is also kept there (max with what it holds).
inline void write_out_s8(const std::int32_t* c, std::int64_t r0, std::int64_t rows, std::int64_t j0, std::int64_t out,
                         const float* xscale, const float* wscale, const float* bias, Activation act, bool add,
                         float* y, float* rowmax = nullptr) {
    for (int g = 0; g < 2; ++g) {
        const std::int64_t j = j0 + g * 16;
        if (j >= out) break;
        const Columns16 cols = columns16(j, out, wscale, bias);
        for (std::int64_t r = 0; r < rows; ++r) {
            const __m512 v = _mm512_cvtepi32_ps(_mm512_load_si512(c + r * 32 + g * 16));
            const __m512 t = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(xscale[r0 + r])), cols.scale), cols.bias);
            float* const yr = y + (r0 + r) * out + j;
            if (rowmax == nullptr) {
                store_out(yr, cols.mask, t, act, add);
                continue;
            }
            const __m512 a = v512::activate(act, t);
            _mm512_mask_storeu_ps(yr, cols.mask, a);
            const float m = _mm512_mask_reduce_max_ps(cols.mask, _mm512_abs_ps(a));
            rowmax[r0 + r] = std::max(rowmax[r0 + r], m);
        }
    }
}

/// y's rows [r0, r0 + rows) x columns [j0, j0 + 32) (those < out) from float32 sums c
/// [32][32]: act(sum + bias), as the oneDNN path makes them; with `add`, y + (sum + bias).
ALTCLIP_KERNEL_ENTRY inline void write_out_f32(const float* c, std::int64_t r0, std::int64_t rows, std::int64_t j0,
                                               std::int64_t out, const float* bias, Activation act, bool add, float* y) {
    for (int g = 0; g < 2; ++g) {
        const std::int64_t j = j0 + g * 16;
        if (j >= out) break;
        const Columns16 cols = columns16(j, out, nullptr, bias);
        for (std::int64_t r = 0; r < rows; ++r) {
            const __m512 t = _mm512_add_ps(_mm512_load_ps(c + r * 32 + g * 16), cols.bias);
            store_out(y + (r0 + r) * out + j, cols.mask, t, act, add);
        }
    }
}

/// How the AMX products walk A [n, k] and W: k in chunks of kTileChunkSteps steps (a step:
/// one tile of 64 bytes a row, 64 int8 or 32 bfloat16 values), rows in blocks of `block_pairs`
/// pairs of 16-row tiles, a thread's column pairs in groups of up to kTileGroup. Each chunk of
/// A's block (block_pairs x 2 KB a step) stays in L2 while a group's columns pass over it, and
/// W is read from memory once per block: a long k (the MLP's fc2, 4096) is cut in chunks
/// instead of cutting the rows in blocks that each read all of W again; the sums of a chunk
/// wait in the slot's buffer (block_pairs x kTileGroup x 4 KB) for the next. Measured on one
/// image's bf16 products (Intel Xeon with AMX, 2 cores, weights cold): rows in blocks of 512
/// KB of A (the int8 kernel's then), 1.35 TFLOP/s; one image's A in one block, 1.48; k in
/// chunks for fc2, 1.63.
struct TilePlan {
    std::int64_t steps = 0, chunk = 0, pairs = 0, block_pairs = 0, blocks = 0;
    std::int64_t partial_floats() const;
};
inline constexpr std::int64_t kTileChunkSteps = 32;
inline constexpr std::int64_t kTileBlockBytes = std::int64_t(640) << 10;  // A of 257 rows x 32 steps (576 KB) in one
inline constexpr std::int64_t kTileGroup = 16;
/// Row pairs (32 rows each) of a block from which tile_columns prefetches the next pair's B
/// tiles itself. With fewer, each B tile serves one or two A tiles, the tiles wait on memory,
/// and the prefetches only add to the loads in flight: a 16-token text's products (1 pair,
/// weights in 16-row copies) 25.2 ms with them, 24.5 without; 64 rows 34.4-36.1 / 33.8-34.1;
/// 96 rows 38.4-39.8 / 41.4-42.1; 128 rows 45.8 / 51.6-52.4 (Intel Xeon with AMX, 2 cores).
inline constexpr std::int64_t kTilePrefetchPairs = 3;
inline std::int64_t TilePlan::partial_floats() const { return chunk < steps ? block_pairs * kTileGroup * 1024 : 0; }
inline TilePlan tile_plan(std::int64_t n, std::int64_t steps) {
    TilePlan p;
    p.steps = steps;
    p.chunk = std::min(p.steps, kTileChunkSteps);
    p.pairs = ((n + 15) / 16 + 1) / 2;
    p.block_pairs = std::max<std::int64_t>(1, std::min(p.pairs, kTileBlockBytes / (p.chunk * 32 * 64)));
    p.blocks = (p.pairs + p.block_pairs - 1) / p.block_pairs;
    return p;
}

/// What the tiles multiply: int8 by int8 (tdpbssd, int32 sums) or bfloat16 by bfloat16
/// (tdpbf16ps, float32 sums).
enum class TileType { s8, bf16 };

/// Pairs [p0, p1) of W's 16-column blocks (columns [32 p0, 32 p1)) for every row of A, walked
/// as `plan` says, 2 x 2 tiles at a time (C 0-3: 32 rows x 32 columns, A 4-5, B 6-7).
/// A: n rows in tiles ([16-row tile][step][16 rows][64 bytes], 1 KB each, zero rows to a whole
/// number of tile pairs). W in panels of `pr` rows (a multiple of 16): [out / pr][ku][pr]
/// 32-bit units (4 int8 or 2 bfloat16 of consecutive k), ku = 16 a step, so that 16 columns x
/// 16 units are a B tile as they lie, rows 4 pr bytes apart (PackedS8 and PackedBf16: pr 16,
/// each tile 1 KB in one piece). The next pair's B is prefetched (to L2) a few lines a step.
/// A block's sums (`c`: the slot's two blocks', 8 KB) are handed to write_out(c, r0, rows, j0)
/// a few rows after each k step of the next block, so that the epilogue's vector work runs
/// beside the tiles'; y's lines are prefetched for writing first. `partial`: the sums between
/// k chunks (plan.partial_floats()).
template <TileType type, class WriteOut>
ALTCLIP_KERNEL_ENTRY inline void tile_columns(const std::uint8_t* a, std::int64_t n, const TilePlan& plan,
                                              const std::uint32_t* w, std::int64_t pr, std::int64_t p0, std::int64_t p1,
                                              const float* y, std::int64_t out, float* c, float* partial,
                                              WriteOut write_out) {
    const std::int64_t steps = plan.steps, ku = steps * 16;
    const long ldb = static_cast<long>(pr * 4);
    auto at = [&](std::int64_t j) { return w + (j / pr) * ku * pr + j % pr; };  // columns [j, j + 16), unit 0
    struct Pending {  // the block whose sums wait to be written out: rows [done, rows) to go
        const float* c = nullptr;
        std::int64_t r0 = 0, rows = 0, j0 = 0, done = 0;
    } prev;
    auto write_prev = [&](std::int64_t upto) {
        const std::int64_t e = std::min(prev.rows, upto);
        if (e <= prev.done) return;
        write_out(prev.c + prev.done * 32, prev.r0 + prev.done, e - prev.done, prev.j0);
        prev.done = e;
    };
    float* const buffers[2] = {c, c + 32 * 32};
    int which = 0;
    load_tile_config();
    for (std::int64_t blk = 0; blk < plan.blocks; ++blk) {
        const std::int64_t i0 = plan.pairs * blk / plan.blocks, i1 = plan.pairs * (blk + 1) / plan.blocks;
        for (std::int64_t g0 = p0; g0 < p1; g0 += kTileGroup) {
            const std::int64_t g1 = std::min(p1, g0 + kTileGroup);
            for (std::int64_t s0 = 0; s0 < steps; s0 += plan.chunk) {
                const std::int64_t s1 = std::min(steps, s0 + plan.chunk), ns = s1 - s0;
                const bool last = s1 == steps;
                // The next pair's tiles of this chunk (after the group's last pair: the first
                // pair's of the next chunk), 2 x 16 lines a step, spread over this pair's steps;
                // for few rows the hardware's prefetchers alone (kTilePrefetchPairs).
                const bool prefetch = i1 - i0 >= kTilePrefetchPairs;
                const std::int64_t lines = 32 * ns, per = (lines + (i1 - i0) * ns - 1) / ((i1 - i0) * ns);
                for (std::int64_t jp = g0; jp < g1; ++jp) {
                    const std::uint32_t* b0 = at(jp * 32);
                    const std::uint32_t* b1 = at(jp * 32 + 16);
                    const std::int64_t jn = jp + 1 < g1 ? jp + 1 : g0;
                    const std::uint32_t* next = jp + 1 < g1 || !last ? at(jn * 32) : nullptr;
                    const std::int64_t next_u = (jp + 1 < g1 ? s0 : s1) * 16;
                    const std::int64_t next_half = next != nullptr ? at(jn * 32 + 16) - next : 0;
                    std::int64_t pf = 0;
                    for (std::int64_t ip = i0; ip < i1; ++ip) {
                        const std::int64_t r0 = ip * 32, rows = std::min<std::int64_t>(32, n - r0);
                        const std::uint8_t* a0 = a + 2 * ip * steps * 1024;
                        const std::uint8_t* a1 = a0 + steps * 1024;
                        float* const sums = partial + ((jp - g0) * (i1 - i0) + (ip - i0)) * 1024;
                        const std::int64_t chunk = (prev.rows + ns - 1) / ns;  // rows written out a step
                        const bool two = rows > 16;  // two tiles of rows, or the last 16 rows or fewer
                        if (last) prefetch_block(y, r0, rows, jp * 32, out);
                        if (s0 == 0) {
                            _tile_zero(0);
                            _tile_zero(1);
                            if (two) {
                                _tile_zero(2);
                                _tile_zero(3);
                            }
                        } else {
                            _tile_loadd(0, sums, 128);
                            _tile_loadd(1, sums + 16, 128);
                            if (two) {
                                _tile_loadd(2, sums + 16 * 32, 128);
                                _tile_loadd(3, sums + 16 * 32 + 16, 128);
                            }
                        }
                        for (std::int64_t s = s0; s < s1; ++s) {
                            _tile_loadd(4, a0 + s * 1024, 64);
                            _tile_loadd(6, b0 + s * 16 * pr, ldb);
                            if constexpr (type == TileType::s8) {
                                _tile_dpbssd(0, 4, 6);
                            } else {
                                _tile_dpbf16ps(0, 4, 6);
                            }
                            _tile_loadd(7, b1 + s * 16 * pr, ldb);
                            if constexpr (type == TileType::s8) {
                                _tile_dpbssd(1, 4, 7);
                            } else {
                                _tile_dpbf16ps(1, 4, 7);
                            }
                            if (two) {
                                _tile_loadd(5, a1 + s * 1024, 64);
                                if constexpr (type == TileType::s8) {
                                    _tile_dpbssd(2, 5, 6);
                                    _tile_dpbssd(3, 5, 7);
                                } else {
                                    _tile_dpbf16ps(2, 5, 6);
                                    _tile_dpbf16ps(3, 5, 7);
                                }
                            }
                            if (prefetch && next != nullptr)
                                for (std::int64_t q = 0; q < per && pf < lines; ++q, ++pf)
                                    _mm_prefetch(reinterpret_cast<const char*>(next + (pf & 1) * next_half + (next_u + (pf >> 1)) * pr),
                                                 _MM_HINT_T1);
                            write_prev((s - s0 + 1) * chunk);
                        }
                        write_prev(prev.rows);
                        float* const dst = last ? buffers[which] : sums;
                        _tile_stored(0, dst, 128);
                        _tile_stored(1, dst + 16, 128);
                        if (two) {
                            _tile_stored(2, dst + 16 * 32, 128);
                            _tile_stored(3, dst + 16 * 32 + 16, 128);
                        }
                        if (last) {
                            which ^= 1;
                            __asm__ volatile("" ::: "memory");  // the vector loads of dst after the tile stores (asm)
                            prev = Pending{dst, r0, rows, jp * 32, 0};
                        }
                    }
                }
            }
        }
    }
    write_prev(prev.rows);
    _tile_release();
}

/// The column pairs of `count` products of one A on the pool: each thread a range of all of
/// them taken together (the first product's pairs, then the next's), for every row.
/// pairs_of(i): product i's pairs; run(i, p0, p1, buffers): its pairs [p0, p1) with the slot's
/// buffers.
template <class PairsOf, class Run>
inline void split_column_pairs(int count, PairsOf pairs_of, ThreadPool* pool, Workspace& workspace, Run run) {
    std::int64_t pairs = 0;
    for (int i = 0; i < count; ++i) pairs += pairs_of(i);
    const std::int64_t tasks = std::min<std::int64_t>(pairs, pool != nullptr ? pool->size() : 1);
    KernelBuffers* const slots = workspace.slots(slot_count(pool, tasks));
    parallel_for_slots(pool, tasks, [&](std::int64_t t, int slot) {
        const std::int64_t q0 = pairs * t / tasks, q1 = pairs * (t + 1) / tasks;
        std::int64_t first = 0;
        for (int i = 0; i < count; ++i) {
            const std::int64_t own = pairs_of(i), p0 = std::max(q0 - first, std::int64_t(0)), p1 = std::min(q1 - first, own);
            if (p0 < p1) run(i, p0, p1, slots[slot]);
            first += own;
        }
    });
}

/// One product of linear_bf16: y [n, out] (=, or += with `add`) act(x . W^T + bias), W bf16 in
/// panels of `panel_rows` rows.
struct Bf16Product {
    const std::uint32_t* w = nullptr;
    std::int64_t out = 0, panel_rows = 0;
    const float* bias = nullptr;
    float* y = nullptr;
    bool add = false;
};

/// One product of linear_s8: y [n, out] (=, or += with `add`) act(x . W^T * scale + bias).
struct S8Product {
    const PackedS8* w = nullptr;
    const float* bias = nullptr;
    float* y = nullptr;
    bool add = false;  // y += the result (a residual connection), act none
};

/// Where a product's weights lie for tile_columns: panels of `pr` rows (units of 4 bytes), out
/// columns.
struct TileWeights {
    const std::uint32_t* w;
    std::int64_t pr, out;
};
inline TileWeights tile_weights(const Bf16Product& p) { return {p.w, p.panel_rows, p.out}; }
inline TileWeights tile_weights(const S8Product& p) {
    return {reinterpret_cast<const std::uint32_t*>(p.w->data.get()), 16, p.w->out};
}

/// The products of A tiles a (bf16_a_tiles or s8_a_tiles, for `plan`) by their weights, on the
/// pool: each thread a range of all products' column pairs (split_column_pairs), the sums
/// handed to write_out(product, c, r0, rows, j0, the slot's buffers).
template <TileType type, class Product, class WriteOut>
inline void tile_products(const void* a, std::int64_t n, const TilePlan& plan, const Product* products, int count,
                          ThreadPool* pool, Workspace& workspace, WriteOut write_out) {
    split_column_pairs(
        count, [&](int i) { return (tile_weights(products[i]).out + 31) / 32; }, pool, workspace,
        [&](int i, std::int64_t p0, std::int64_t p1, KernelBuffers& mine) {
            const Product& p = products[i];
            const TileWeights w = tile_weights(p);
            float* const buffers = packed::aligned_at_least(mine.amx_out, 2 * 32 * 32 + plan.partial_floats());
            tile_columns<type>(static_cast<const std::uint8_t*>(a), n, plan, w.w, w.pr, p0, p1, p.y, w.out, buffers,
                               buffers + 2 * 32 * 32, [&](const float* c, std::int64_t r0, std::int64_t rows, std::int64_t j0) {
                                   write_out(p, c, r0, rows, j0, mine);
                               });
        });
}

/// x's rows [n, k] (or layer_norm of them) rounded to bfloat16 (nearest even, as the bf16_dot
/// kernels and the oneDNN path round them) into A tiles for `plan` ([16-row tile][step][16
/// rows][32 values]), zero rows to a whole number of tile pairs; in parts on the pool.
inline std::uint16_t* bf16_a_tiles(const float* x, std::int64_t n, std::int64_t k, const TilePlan& plan,
                                   std::vector<std::uint32_t>& buffer, ThreadPool* pool, const RowNorm* norm) {
    const std::int64_t tiles = plan.pairs * 2, steps = plan.steps;
    auto* const a = reinterpret_cast<std::uint16_t*>(packed::aligned_at_least(buffer, tiles * 16 * k / 2));
    parallel_chunks(pool, tiles, 1, [&](std::int64_t t0, std::int64_t t1) {
        std::vector<float> tmp(norm != nullptr ? static_cast<std::size_t>(k) : 0);
        for (std::int64_t r = t0 * 16; r < t1 * 16; ++r) {
            std::uint16_t* const row = a + (r / 16) * steps * 512 + (r % 16) * 32;  // step s at + s * 512
            if (r < n) {
                const float* src = source_row(x, k, r, norm, tmp.data());
                for (std::int64_t s = 0; s < steps; ++s) packed::round_row_bf16(src + s * 32, 32, row + s * 512);
            } else {
                for (std::int64_t s = 0; s < steps; ++s) std::memset(row + s * 512, 0, 64);
            }
        }
    });
    return a;
}

/// The products of one x [n, k] by bf16 weights in panels (bf16_panels_supported), x rounded
/// to bfloat16 once for them all into A's tiles, summed in float32 on AMX tiles
/// (tile_columns), on the pool as linear_s8. With `norm`, the products of layer_norm(x).
inline void linear_bf16(const float* x, std::int64_t n, std::int64_t k, const Bf16Product* products, int count,
                        ThreadPool* pool, Workspace& workspace, Activation act, const RowNorm* norm = nullptr) {
    const TilePlan plan = tile_plan(n, k / 32);
    const std::uint16_t* a = bf16_a_tiles(x, n, k, plan, workspace.caller().amx_x, pool, norm);
    tile_products<TileType::bf16>(a, n, plan, products, count, pool, workspace,
                                  [&](const Bf16Product& p, const float* c, std::int64_t r0, std::int64_t rows,
                                      std::int64_t j0, KernelBuffers&) {
                                      write_out_f32(c, r0, rows, j0, p.out, p.bias, p.add ? Activation::none : act,
                                                    p.add, p.y);
                                  });
}

/// y's rows [r0, r0 + rows) x columns [j0, j0 + 32) from float32 sums c [32][32] as the next
/// product's A tiles (steps of 32 values, `steps` a row): act(sum + bias) rounded to bfloat16,
/// the values write_out_f32 gives, as bf16_a_tiles rounds them. Columns [j0, j0 + 32) are all
/// < out (out a whole number of 32-value steps).
ALTCLIP_KERNEL_ENTRY inline void write_out_a_tiles(const float* c, std::int64_t r0, std::int64_t rows, std::int64_t j0,
                                                   const float* bias, Activation act, std::int64_t steps,
                                                   std::uint16_t* a) {
    const __m512 b0 = bias != nullptr ? _mm512_loadu_ps(bias + j0) : _mm512_setzero_ps();
    const __m512 b1 = bias != nullptr ? _mm512_loadu_ps(bias + j0 + 16) : _mm512_setzero_ps();
    for (std::int64_t r = 0; r < rows; ++r) {
        const std::int64_t row = r0 + r;
        const __m512 lo = v512::activate(act, _mm512_add_ps(_mm512_load_ps(c + r * 32), b0));
        const __m512 hi = v512::activate(act, _mm512_add_ps(_mm512_load_ps(c + r * 32 + 16), b1));
        std::uint16_t* dst = a + ((row / 16) * steps + j0 / 32) * 512 + (row % 16) * 32;
        _mm512_store_si512(dst, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
}

/// The MLP's two products on bf16 tiles: second.y (=, or += with second.add) act(x W1^T + b1)
/// W2^T + b2, without act(x W1^T + b1) in float32: first's write-out rounds it to bfloat16
/// straight into second's A tiles (first.y is not written), the numbers linear_bf16 gives
/// for first, then second. first.out must be a whole number of 32-value steps (second's k).
inline void linear_bf16_chain(const float* x, std::int64_t n, std::int64_t k, const Bf16Product& first,
                              Activation act, const Bf16Product& second, ThreadPool* pool, Workspace& workspace,
                              const RowNorm* norm = nullptr) {
    const TilePlan plan1 = tile_plan(n, k / 32), plan2 = tile_plan(n, first.out / 32);
    KernelBuffers& ws = workspace.caller();
    const std::uint16_t* a1 = bf16_a_tiles(x, n, k, plan1, ws.amx_x, pool, norm);
    auto* const a2 = reinterpret_cast<std::uint16_t*>(packed::aligned_at_least(ws.amx_next, plan2.pairs * 32 * first.out / 2));
    for (std::int64_t r = n; r < plan2.pairs * 32; ++r)  // the padding rows (the write-out makes rows < n)
        for (std::int64_t s = 0; s < plan2.steps; ++s) std::memset(a2 + ((r / 16) * plan2.steps + s) * 512 + (r % 16) * 32, 0, 64);
    tile_products<TileType::bf16>(a1, n, plan1, &first, 1, pool, workspace,
                                  [&](const Bf16Product& p, const float* c, std::int64_t r0, std::int64_t rows,
                                      std::int64_t j0, KernelBuffers&) {
                                      write_out_a_tiles(c, r0, rows, j0, p.bias, act, plan2.steps, a2);
                                  });
    tile_products<TileType::bf16>(a2, n, plan2, &second, 1, pool, workspace,
                                  [&](const Bf16Product& p, const float* c, std::int64_t r0, std::int64_t rows,
                                      std::int64_t j0, KernelBuffers&) {
                                      write_out_f32(c, r0, rows, j0, p.out, p.bias, Activation::none, p.add, p.y);
                                  });
}

/// x's rows (or layer_norm of them, or with `amax` rows whose largest |x| is known) quantized
/// per row into A tiles for `plan` (quantize_rows_s8), their scales in xscale; in parts on the
/// pool.
inline std::int8_t* s8_a_tiles(const float* x, std::int64_t n, std::int64_t k, std::int64_t kp, const TilePlan& plan,
                               std::vector<std::uint32_t>& buffer, std::vector<float>& xscale, ThreadPool* pool,
                               const RowNorm* norm, const float* amax = nullptr) {
    const std::int64_t tiles = plan.pairs * 2;
    auto* const a = reinterpret_cast<std::int8_t*>(packed::aligned_at_least(buffer, tiles * 16 * kp / 4));
    xscale.resize(static_cast<std::size_t>(tiles * 16));
    float* const scales = xscale.data();
    parallel_chunks(pool, tiles, 1, [&](std::int64_t t0, std::int64_t t1) {
        std::vector<float> tmp(norm != nullptr ? static_cast<std::size_t>(k) : 0);
        std::vector<std::int8_t> q(static_cast<std::size_t>(kp));
        quantize_rows_s8(x, n, k, kp, t0 * 16, t1 * 16, a, scales, norm, amax, tmp.data(), q.data());
    });
    return a;
}

/// The products of one x [n, k] by W's packed as PackedS8 (out = W's rows, k its columns), x
/// quantized per row to int8 once for all of them into A's tiles: the q8_dot kernels'
/// numbers (tile_columns), on the pool (rows quantized in parts, then split_column_pairs).
/// With `norm`, the products of layer_norm(x). Buffers: A and the row scales (the caller's),
/// 8 KB of sums a slot and the sums between k chunks.
inline void linear_s8(const float* x, std::int64_t n, std::int64_t k, const S8Product* products, int count,
                      ThreadPool* pool, Workspace& workspace, Activation act, const RowNorm* norm = nullptr) {
    const std::int64_t kp = products[0].w->kp;
    const TilePlan plan = tile_plan(n, kp / 64);
    KernelBuffers& ws = workspace.caller();
    const std::int8_t* a = s8_a_tiles(x, n, k, kp, plan, ws.amx_x, ws.xscale, pool, norm);
    const float* xscale = ws.xscale.data();
    tile_products<TileType::s8>(a, n, plan, products, count, pool, workspace,
                                [&](const S8Product& p, const float* c, std::int64_t r0, std::int64_t rows,
                                    std::int64_t j0, KernelBuffers&) {
                                    write_out_s8(reinterpret_cast<const std::int32_t*>(c), r0, rows, j0, p.w->out, xscale,
                                                 p.w->scale, p.bias, p.add ? Activation::none : act, p.add, p.y);
                                });
}

/// The MLP's two int8 products: second.y (=, or += with second.add) second(act(first(x))),
/// first.y = act(x W1^T * s1 + b1). Second's x is quantized per row, which needs each row's
/// largest |value|: first's write-out keeps it per slot as it writes first.y, so that second's
/// quantization reads first.y once instead of twice (packed::quantize_row_max). The numbers of
/// linear_s8 for first, then second (for finite values: a NaN, which has no order, may leave a
/// row another scale, its results NaN either way).
inline void linear_s8_chain(const float* x, std::int64_t n, std::int64_t k, const S8Product& first, Activation act,
                            const S8Product& second, ThreadPool* pool, Workspace& workspace,
                            const RowNorm* norm = nullptr) {
    const std::int64_t kp1 = first.w->kp, kp2 = second.w->kp, mid = first.w->out;
    const TilePlan plan1 = tile_plan(n, kp1 / 64), plan2 = tile_plan(n, kp2 / 64);
    KernelBuffers& ws = workspace.caller();
    const std::int8_t* a1 = s8_a_tiles(x, n, k, kp1, plan1, ws.amx_x, ws.xscale, pool, norm);
    const float* xscale = ws.xscale.data();
    const int slots = slot_count(pool, pool != nullptr ? pool->size() : 1);
    KernelBuffers* const all = workspace.slots(slots);
    for (int i = 0; i < slots; ++i) all[i].amx_rowmax.assign(static_cast<std::size_t>(n), 0.0f);
    tile_products<TileType::s8>(a1, n, plan1, &first, 1, pool, workspace,
                                [&](const S8Product& p, const float* c, std::int64_t r0, std::int64_t rows,
                                    std::int64_t j0, KernelBuffers& mine) {
                                    write_out_s8(reinterpret_cast<const std::int32_t*>(c), r0, rows, j0, mid, xscale,
                                                 p.w->scale, p.bias, act, false, p.y, mine.amx_rowmax.data());
                                });
    std::vector<float>& amax = ws.amx_rowmax;
    amax.assign(static_cast<std::size_t>(n), 0.0f);
    for (int i = 0; i < slots; ++i)
        for (std::int64_t r = 0; r < n; ++r) amax[static_cast<std::size_t>(r)] = std::max(amax[static_cast<std::size_t>(r)], all[i].amx_rowmax[static_cast<std::size_t>(r)]);
    std::vector<float>& xscale2 = ws.xscale2;
    const std::int8_t* a2 = s8_a_tiles(first.y, n, mid, kp2, plan2, ws.amx_next, xscale2, pool, nullptr, amax.data());
    const float* scales2 = xscale2.data();
    tile_products<TileType::s8>(a2, n, plan2, &second, 1, pool, workspace,
                                [&](const S8Product& p, const float* c, std::int64_t r0, std::int64_t rows,
                                    std::int64_t j0, KernelBuffers&) {
                                    write_out_s8(reinterpret_cast<const std::int32_t*>(c), r0, rows, j0, p.w->out,
                                                 scales2, p.w->scale, p.bias, Activation::none, p.add, p.y);
                                });
}

}  // namespace altclip::kernels::amx
ALTCLIP_AMX_END
#endif  // ALTCLIP_X86
