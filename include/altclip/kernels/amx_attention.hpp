// Attention of one (sequence, head) on AMX tiles, for models whose products round their
// activations to bfloat16 or int8 (ops.hpp's attention_math; attention_one takes it at Isa::amx
// for AttentionMath::bf16): Q, K, V and
// the softmax's probabilities rounded to bfloat16 (nearest even), products summed in float32
// by the tiles, the softmax in float32 between them. A float32 model keeps the float32
// kernels. Head sizes 32 and 64 (AltCLIP's: 64); any other takes the float32 kernel.
//
// Tiles are 16 rows x 64 bytes (palette 1): A = 16 rows x 32 bfloat16, B = 16 pairs of rows x
// 16 columns (each 32-bit unit two bfloat16 of consecutive k), C = 16 x 16 float32.
//   scores S = Q K^T: A = Q's rows (row-major bfloat16, d / 32 steps), B = K^T as pairs of
//   dims x keys; probabilities P = softmax(S * scale, masked keys -inf);
//   out = P V: A = P's rows (keys padded to 32 with zeros), B = V as pairs of keys x dims.
// Query rows go 16 at a time; the last block's padding rows are zeros and never written out.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "amx_tiles.hpp"
#include "buffer.hpp"
#include "cpu.hpp"
#include "gemm_packed.hpp"
#include "lanes_avx512.hpp"

#if ALTCLIP_X86
#include <immintrin.h>

ALTCLIP_AMX_BEGIN
namespace altclip::kernels::amx {

/// Whether attention_head runs this head size.
inline constexpr bool head_size_supported(std::int64_t d) { return d == 32 || d == 64; }

/// 32 float32 (lanes outside the masks as zeros) -> 16 units of bfloat16 pairs, nearest even.
inline __m512i pairs(const float* x, __mmask16 lo, __mmask16 hi) {
    return (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + 16), _mm512_maskz_loadu_ps(lo, x));
}

/// out = softmax(Q K^T * scale, keys masked) V for one (sequence, head): q, k, v, out are
/// [seq] rows of `ld` floats, this head's d values first; key_mask nullptr or [seq], 0 =
/// padding. `ws`: the buffers of the thread running it (its slot's).
ALTCLIP_KERNEL_ENTRY inline void attention_head(const float* q, const float* k, const float* v, std::int64_t seq,
                                                std::int64_t d, std::int64_t ld, const std::int64_t* key_mask,
                                                float scale, float* out, KernelBuffers& ws) {
    using packed::aligned_at_least;
    const std::int64_t du = d / 2;                       // units in a row of Q (pairs of dims)
    const std::int64_t ks = d / 32;                      // k steps of Q K^T (1 or 2)
    const std::int64_t rows16 = (seq + 15) / 16 * 16;    // query rows, and keys, padded to 16
    const std::int64_t keys32 = (seq + 31) / 32 * 32;    // keys padded to 32: the k of P V
    const std::int64_t kblocks = rows16 / 16, vsteps = keys32 / 32, dblocks = d / 16;
    std::uint32_t* const qa = aligned_at_least(ws.amx_q, rows16 * du);
    std::uint32_t* const kb = aligned_at_least(ws.amx_k, kblocks * ks * 256);
    std::uint32_t* const vb = aligned_at_least(ws.amx_v, dblocks * vsteps * 256);
    // Two blocks of query rows in flight (below): their scores and probabilities, twice.
    std::uint32_t* const pa_both = aligned_at_least(ws.amx_p, 2 * 16 * keys32 / 2);
    float* const scores_both = aligned_at_least(ws.scores, 2 * 16 * rows16);
    float* const tmp = aligned_at_least(ws.amx_out, 16 * d);
    const __mmask16 all = 0xFFFF;

    // Q's rows as bfloat16 pairs, zero rows past seq.
    for (std::int64_t r = 0; r < rows16; ++r)
        for (std::int64_t s = 0; s < ks; ++s)
            _mm512_store_si512(qa + r * du + s * 16, r < seq ? pairs(q + r * ld + s * 32, all, all) : _mm512_setzero_si512());
    // K^T tiles: block j (keys 16 j ..), step s: [16 pairs of dims][16 keys] units, 16 keys'
    // units transposed in registers.
    for (std::int64_t j = 0; j < kblocks; ++j)
        for (std::int64_t s = 0; s < ks; ++s) {
            __m512i r[16];
            for (int c = 0; c < 16; ++c) {
                const std::int64_t key = j * 16 + c;
                r[c] = key < seq ? pairs(k + key * ld + s * 32, all, all) : _mm512_setzero_si512();
            }
            packed::transpose16(r);  // r[u]: unit u (dims 2u, 2u + 1) of the 16 keys
            std::uint32_t* tile = kb + (j * ks + s) * 256;
            for (int u = 0; u < 16; ++u) _mm512_store_si512(tile + u * 16, r[u]);
        }
    // V tiles: dims block b (16 dims), step t (32 keys): [16 pairs of keys][16 dims] units.
    for (std::int64_t t = 0; t < vsteps; ++t) {
        for (int pr = 0; pr < 16; ++pr) {
            const std::int64_t k0 = t * 32 + 2 * pr, k1 = k0 + 1;
            for (std::int64_t b = 0; b < dblocks; ++b) {
                const __m512i a = k0 < seq ? _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(v + k0 * ld + b * 16)))
                                           : _mm512_setzero_si512();
                const __m512i c = k1 < seq ? _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(v + k1 * ld + b * 16)))
                                           : _mm512_setzero_si512();
                _mm512_store_si512(vb + (b * vsteps + t) * 256 + pr * 16, _mm512_or_si512(a, _mm512_slli_epi32(c, 16)));
            }
        }
    }

    __asm__ volatile("" ::: "memory");  // the tiles' loads (asm without memory operands) after the stores above
    load_tile_config();

    // Keys attended, per block of 16: not masked, and before seq.
    std::vector<std::uint16_t>& keep = ws.amx_keep;  // __mmask16 each
    keep.assign(static_cast<std::size_t>(kblocks), 0);
    for (std::int64_t key = 0; key < seq; ++key)
        if (key_mask == nullptr || key_mask[key] != 0) keep[static_cast<std::size_t>(key / 16)] |= static_cast<std::uint16_t>(1u << (key % 16));
    const std::int64_t kblocks32 = keys32 / 32;
    alignas(64) float inv_sums[2][16];
    const long qstride = static_cast<long>(du * 4), sstride = static_cast<long>(rows16 * 4);
    const long pstride = static_cast<long>(keys32 * 2), ostride = static_cast<long>(d * 4);
    const __m512 vscale = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    // Query block b (rows 16 b ..) uses the buffers b % 2.
    auto scores_of = [&](std::int64_t b) { return scores_both + (b % 2) * 16 * rows16; };
    auto probs_of = [&](std::int64_t b) { return pa_both + (b % 2) * 16 * (keys32 / 2); };

    // Scores of block b's rows against every key (tiles), 4 blocks of 16 keys at a time.
    auto scores_block = [&](std::int64_t b) {
        const std::int64_t r0 = b * 16;
        _tile_loadd(4, qa + r0 * du, qstride);
        if (ks == 2) _tile_loadd(5, qa + r0 * du + 16, qstride);
        for (std::int64_t j0 = 0; j0 < kblocks; j0 += 4) {
            const std::int64_t nb = std::min<std::int64_t>(4, kblocks - j0);
            const std::uint32_t* kt = kb + j0 * ks * 256;
            float* sc = scores_of(b) + j0 * 16;
#define ALTCLIP_AMX_SCORES(C, J)                                               \
    _tile_zero(C);                                                             \
    _tile_loadd(6, kt + (J) * ks * 256, 64);                                   \
    _tile_dpbf16ps(C, 4, 6);                                                   \
    if (ks == 2) {                                                             \
        _tile_loadd(7, kt + (J) * ks * 256 + 256, 64);                         \
        _tile_dpbf16ps(C, 5, 7);                                               \
    }                                                                          \
    _tile_stored(C, sc + (J) * 16, sstride);
            ALTCLIP_AMX_SCORES(0, 0)
            if (nb > 1) { ALTCLIP_AMX_SCORES(1, 1) }
            if (nb > 2) { ALTCLIP_AMX_SCORES(2, 2) }
            if (nb > 3) { ALTCLIP_AMX_SCORES(3, 3) }
#undef ALTCLIP_AMX_SCORES
        }
    };
    // Softmax of each row of block b in float32: e = exp(scale * (s - max)) over the keys
    // attended (masked keys and keys past seq: 0), rounded to bfloat16 pairs (zeros up to
    // keys32) as they are made; the division by their sum is left to the output rows.
    auto softmax_block = [&](std::int64_t b) {
        const std::int64_t r0 = b * 16;
        float* const inv_sum = inv_sums[b % 2];
        for (int i = 0; i < 16; ++i) {
            const float* a = scores_of(b) + i * rows16;
            std::uint32_t* prow = probs_of(b) + i * (keys32 / 2);
            inv_sum[i] = 0;
            if (r0 + i >= seq) {
                std::memset(prow, 0, static_cast<std::size_t>(keys32) * 2);
                continue;
            }
            __m512 vmax = ninf;
            for (std::int64_t j = 0; j < kblocks; ++j)
                vmax = _mm512_mask_max_ps(vmax, keep[j], vmax, _mm512_load_ps(a + j * 16));
            const float mx = _mm512_reduce_max_ps(vmax);
            if (mx == -std::numeric_limits<float>::infinity()) {  // every key masked: zeros, as the f32 kernels
                std::memset(prow, 0, static_cast<std::size_t>(keys32) * 2);
                continue;
            }
            const __m512 vms = _mm512_set1_ps(mx * scale);
            __m512 vsum = _mm512_setzero_ps();
            for (std::int64_t j = 0; j < kblocks32 * 2; j += 2) {
                const __m512 e0 = j < kblocks ? _mm512_maskz_mov_ps(keep[j], v512::exp(_mm512_fmsub_ps(_mm512_load_ps(a + j * 16), vscale, vms)))
                                              : _mm512_setzero_ps();
                const __m512 e1 = j + 1 < kblocks ? _mm512_maskz_mov_ps(keep[j + 1], v512::exp(_mm512_fmsub_ps(_mm512_load_ps(a + j * 16 + 16), vscale, vms)))
                                                  : _mm512_setzero_ps();
                vsum = _mm512_add_ps(vsum, _mm512_add_ps(e0, e1));
                _mm512_store_si512(prow + j * 8, (__m512i)_mm512_cvtne2ps_pbh(e1, e0));
            }
            inv_sum[i] = 1.0f / _mm512_reduce_add_ps(vsum);
        }
    };
    // P . V for block b (tiles): 16 dims a C tile, every dims block at once (d / 16 <= 4),
    // stored to tmp.
    auto pv_block = [&](std::int64_t b) {
        const std::uint32_t* const pa = probs_of(b);
        _tile_zero(0);
        _tile_zero(1);
        if (dblocks > 2) {
            _tile_zero(2);
            _tile_zero(3);
        }
        for (std::int64_t t = 0; t < vsteps; ++t) {
            _tile_loadd(4, pa + t * 16, pstride);
            const std::uint32_t* vt = vb + t * 256;
            const std::int64_t vblock = vsteps * 256;
            _tile_loadd(6, vt, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_loadd(7, vt + vblock, 64);
            _tile_dpbf16ps(1, 4, 7);
            if (dblocks > 2) {
                _tile_loadd(6, vt + 2 * vblock, 64);
                _tile_dpbf16ps(2, 4, 6);
                _tile_loadd(7, vt + 3 * vblock, 64);
                _tile_dpbf16ps(3, 4, 7);
            }
        }
        _tile_stored(0, tmp, ostride);
        _tile_stored(1, tmp + 16, ostride);
        if (dblocks > 2) {
            _tile_stored(2, tmp + 32, ostride);
            _tile_stored(3, tmp + 48, ostride);
        }
    };
    // Block b's output rows: tmp's rows divided by their sums.
    auto write_block = [&](std::int64_t b) {
        const std::int64_t r0 = b * 16, valid = std::min<std::int64_t>(16, seq - r0);
        for (std::int64_t i = 0; i < valid; ++i) {
            const __m512 inv = _mm512_set1_ps(inv_sums[b % 2][i]);
            for (std::int64_t j = 0; j < dblocks; ++j)
                _mm512_storeu_ps(out + (r0 + i) * ld + j * 16, _mm512_mul_ps(_mm512_load_ps(tmp + i * d + j * 16), inv));
        }
    };

    // Two query blocks in flight: while the tiles make block b + 1's scores and block b - 1's
    // P . V, the vector units run block b's softmax (and then write block b - 1's rows), so
    // that neither waits for the other's stores (tile stores read back by vector loads, vector
    // stores read back by tile loads).
    const std::int64_t qblocks = (seq + 15) / 16;
    scores_block(0);
    for (std::int64_t b = 0; b < qblocks; ++b) {
        if (b + 1 < qblocks) scores_block(b + 1);
        if (b >= 1) pv_block(b - 1);
        __asm__ volatile("" ::: "memory");  // vector loads of the stored tiles after the tile stores (asm)
        softmax_block(b);
        if (b >= 1) write_block(b - 1);
        __asm__ volatile("" ::: "memory");  // the tiles' loads of P after its stores
    }
    pv_block(qblocks - 1);
    __asm__ volatile("" ::: "memory");
    write_block(qblocks - 1);
    _tile_release();
}

}  // namespace altclip::kernels::amx
ALTCLIP_AMX_END
#endif  // ALTCLIP_X86
