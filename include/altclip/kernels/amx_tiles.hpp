// What altclip's AMX kernels share (amx_attention.hpp, amx_gemm.hpp): the tile configuration.
#pragma once

#include <cstdint>

#include "cpu.hpp"

#if ALTCLIP_X86
#include <immintrin.h>

ALTCLIP_AMX_BEGIN
namespace altclip::kernels::amx {

/// Palette 1 with all 8 tiles 16 rows x 64 bytes: A = 16 rows x 32 bfloat16, B = 16 pairs of
/// rows x 16 columns (32-bit units of two bfloat16), C = 16 x 16 float32. Each kernel loads it
/// on its thread before its first tile instruction and releases the tiles when done.
inline void load_tile_config() {
    struct alignas(64) Config {
        std::uint8_t palette = 1, start_row = 0, reserved[14] = {};
        std::uint16_t colsb[16] = {};
        std::uint8_t rows[16] = {};
    } config;
    for (int t = 0; t < 8; ++t) {
        config.colsb[t] = 64;
        config.rows[t] = 16;
    }
    _tile_loadconfig(&config);
}

}  // namespace altclip::kernels::amx
ALTCLIP_AMX_END
#endif  // ALTCLIP_X86
