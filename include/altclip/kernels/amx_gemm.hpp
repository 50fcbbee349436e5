// The text tower's int8 weights (WeightType::q8_bf16) on AMX tiles: y = act(x . W^T * scale +
// bias) with W int8 [out, k] row-major (per-row scale), x rounded to bfloat16 (nearest even, as
// the avx512_bf16 kernels round it for many rows) and W's int8 values widened to bfloat16,
// which is exact, summed in float32 by the tiles. AMX multiplies bf16 by bf16 or int8 by int8,
// not int8 by bf16: the widening is done here, 64 rows of W at a time into a panel of tiles in
// the slot's buffer, each row of W widened once per call whatever the number of rows of x.
//
// Computed as y^T = W . x^T, so that W's rows are the A tiles as they lie (16 rows x 32 k) and
// x, small, is the one transposed: B tiles of x^T hold pairs of k x 16 rows of x. C tiles are
// 16 rows of W x 16 rows of x, gathered by columns into y's rows on the way out.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "activation.hpp"
#include "amx_tiles.hpp"
#include "buffer.hpp"
#include "cpu.hpp"
#include "gemm_packed.hpp"
#include "lanes_avx512.hpp"
#include "thread_pool.hpp"

#if ALTCLIP_X86
#include <immintrin.h>

ALTCLIP_AMX_BEGIN
namespace altclip::kernels::amx {

/// Whether linear_q8_bf16 runs this product (k a whole number of 32-value steps).
inline constexpr bool q8_bf16_supported(std::int64_t k) { return k > 0 && k % 32 == 0; }

/// Rows [j0, j0 + 64) of W (rows past `out` as zeros), widened to bfloat16 A tiles: panel
/// [k / 32 steps][4 blocks of 16 rows][16 rows][16 units].
ALTCLIP_KERNEL_ENTRY inline void widen_panel(const std::int8_t* w, std::int64_t out, std::int64_t k, std::int64_t j0,
                                             std::uint32_t* panel) {
    const std::int64_t steps = k / 32;
    for (int r = 0; r < 64; ++r) {
        const std::int64_t j = j0 + r;
        const int blk = r / 16, row = r % 16;
        if (j >= out) {
            for (std::int64_t s = 0; s < steps; ++s)
                _mm512_store_si512(panel + (s * 4 + blk) * 256 + row * 16, _mm512_setzero_si512());
            continue;
        }
        const std::int8_t* src = w + j * k;
        for (std::int64_t s = 0; s < steps; ++s) {
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
        const __mmask16 m = out - jb >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (out - jb)) - 1u);
        const __m512 sc = _mm512_maskz_loadu_ps(m, scale + jb);
        const __m512 bs = bias != nullptr ? _mm512_maskz_loadu_ps(m, bias + jb) : _mm512_setzero_ps();
        for (int col = 0; col < 16 && i0 + col < n; ++col) {
            const __m512 sum = _mm512_i32gather_ps(by_row, c + blk * 256 + col, 4);
            const __m512 v = _mm512_add_ps(_mm512_mul_ps(sum, sc), bs);
            _mm512_mask_storeu_ps(y + (i0 + col) * out + jb, m, v512::activate(act, v));
        }
    }
}

/// y[n, out] = act(x[n, k] . W^T * scale + bias) for int8 W [out, k] (row scales `scale`), on
/// the pool: one task per 64 rows of W. k must be q8_bf16_supported.
inline void linear_q8_bf16(const float* x, std::int64_t n, std::int64_t k, const std::int8_t* w, const float* scale,
                           const float* bias, std::int64_t out, float* y, ThreadPool* pool, Workspace& workspace,
                           Activation act) {
    using packed::aligned_at_least;
    const std::int64_t steps = k / 32, xblocks = (n + 15) / 16, groups = (out + 63) / 64;
    std::uint32_t* const xt = aligned_at_least(workspace.caller().amx_x, xblocks * steps * 256);
    x_tiles(x, n, k, xt);
    KernelBuffers* const slots = workspace.slots(slot_count(pool, groups));
    parallel_for_slots(pool, groups, [&](std::int64_t g, int slot) {
        std::uint32_t* const panel = aligned_at_least(slots[slot].amx_w, steps * 4 * 256);
        float* const c = aligned_at_least(slots[slot].amx_out, 4 * 256);
        const std::int64_t j0 = g * 64;
        widen_panel(w, out, k, j0, panel);
        __asm__ volatile("" ::: "memory");  // the tiles' loads (asm without memory operands) after the stores above
        load_tile_config();
        const long stride = 64;
        for (std::int64_t b = 0; b < xblocks; ++b) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            const std::uint32_t* xs = xt + b * steps * 256;
            for (std::int64_t s = 0; s < steps; ++s) {
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
            _tile_stored(0, c, stride);
            _tile_stored(1, c + 256, stride);
            _tile_stored(2, c + 512, stride);
            _tile_stored(3, c + 768, stride);
            write_out(c, b * 16, n, j0, out, scale, bias, act, y);
        }
        _tile_release();
    });
}

}  // namespace altclip::kernels::amx
ALTCLIP_AMX_END
#endif  // ALTCLIP_X86
