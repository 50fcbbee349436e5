// The instruction sets altclip's kernels are written for, and what this CPU has.
//
// The kernels are chosen when a model is loaded, for the CPU the program runs on, whatever
// flags the program was compiled with: a build without -march runs the AVX-512 kernels on a
// CPU that has AVX-512. ModelOptions::max_isa and the environment variable ALTCLIP_MAX_ISA
// (portable, avx2, avx512, avx512_vnni, avx512_bf16, amx) cap the choice, so that every
// lower path can be run and tested on one machine.
#pragma once

#include <string>

namespace altclip {

/// Kernel levels, each including the ones before it.
enum class Isa : int {
    portable = 0,     // any CPU: Eigen, compiled for the program's own target
    avx2 = 1,         // AVX2 + FMA: float32 kernels (kernels/avx2.hpp); bf16 and int8 weights widened
    avx512 = 2,       // AVX-512 F/BW/DQ/VL: float32 kernels; bf16 and int8 weights widened
    avx512_vnni = 3,  // + AVX512_VNNI: int8 x int8 dot products for q8 files
    avx512_bf16 = 4,  // + AVX512_BF16: bfloat16 dot products for bf16 files (and q8 text), where
                      // they are faster than widening (CpuInfo::bf16_dot_pays)
    amx = 5,          // + AMX-BF16/INT8 tiles: a bf16/q8 model's products and attention on altclip's
                      // tile kernels (kernels/amx_gemm.hpp, amx_attention.hpp); altclip's other
                      // kernels run avx512_bf16
    best = amx,       // no cap: the best the CPU allows
};

inline const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::portable: return "portable";
        case Isa::avx2: return "avx2";
        case Isa::avx512: return "avx512";
        case Isa::avx512_vnni: return "avx512_vnni";
        case Isa::avx512_bf16: return "avx512_bf16";
        case Isa::amx: return "amx";
    }
    return "?";
}

/// What the CPU under this program offers (cpuid and the OS's saved register state).
struct CpuInfo {
    std::string brand;        // e.g. "AMD EPYC 9R14"; empty where the CPU does not say
    std::string features;     // the instruction sets that matter here, space-separated
    Isa supported = Isa::portable;  // the best level the CPU and OS allow
    Isa env_cap = Isa::best;        // ALTCLIP_MAX_ISA, or best when unset
    /// An Intel CPU with AVX512_BF16: vdpbf16ps runs at half its float32 FMA rate or less
    /// (measured on the Intel Xeon with AMX: 239 against 478 GFLOP/s on 2 cores, and oneDNN's
    /// own avx512_core_bf16 matmul at 208; on AMD Zen 4 it is twice the FMA rate: 470 against
    /// 230; bench/ISA_RESULTS.md), so multiplying bf16 weights widened to float32 is faster.
    bool bf16_dot_half_rate = false;
    /// The level a model loaded with this cap runs (min of supported, env_cap and cap).
    Isa effective(Isa cap = Isa::best) const {
        Isa e = supported;
        if (env_cap < e) e = env_cap;
        if (cap < e) e = cap;
        return e;
    }
    /// Whether a model at `level` multiplies bf16 weights (and a q8 file's text weights) with
    /// activations rounded to bfloat16 (WeightType::bf16_dot, q8_bf16): on AMX tiles, or with
    /// AVX512_BF16 where its dot products are faster than float32 FMAs. Elsewhere the weights
    /// are widened to float32 in the kernels, the activations kept as they are.
    bool bf16_dot_pays(Isa level) const {
        return level >= Isa::amx || (level >= Isa::avx512_bf16 && !bf16_dot_half_rate);
    }
    /// One line for logs: brand, features, and the level that runs without a cap.
    std::string describe() const {
        std::string s = brand.empty() ? "unknown CPU" : brand;
        s += " [" + features + "]; kernels: ";
        s += isa_name(effective());
        if (effective() != supported) s += std::string(" (capped by ALTCLIP_MAX_ISA; the CPU allows ") + isa_name(supported) + ")";
        if (effective() == Isa::avx512_bf16 && !bf16_dot_pays(Isa::avx512_bf16))
            s += " (bf16 weights widened to float32, a q8 file's text weights too: this CPU's AVX512_BF16 dot products "
                 "run at half its float32 rate)";
        if (effective() == Isa::amx)
            s += " (AMX: the products and the attention of bf16 and q8 models on altclip's own tile kernels; "
                 "the other kernels run avx512_bf16)";
        return s;
    }
};

}  // namespace altclip
