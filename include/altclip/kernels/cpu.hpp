// Which kernels run: the CPU's instruction sets read once (cpuid, and xgetbv for the
// register state the OS saves), capped by ALTCLIP_MAX_ISA; and the target regions that let
// one header hold code for several instruction sets, compiled whatever -march the program
// uses and entered only after the check.
//
// A target region (ALTCLIP_AVX512_BEGIN ... ALTCLIP_AVX512_END) compiles the functions
// defined in it for AVX-512 (with BF16 and VNNI); ALTCLIP_AVX2_BEGIN ... END for AVX2 + FMA. Rules that keep that safe:
//   - every header is included before a region opens (a standard function first defined
//     inside one would be compiled for AVX-512 and could run on a CPU without it);
//   - a region's code runs only behind a check of the model's Isa (kernels::isa_of(pool));
//     bf16 and VNNI instructions only where the Isa says the CPU has them (the compiler
//     emits them only for their intrinsics: there is no bf16 or int8 dot-product loop for
//     it to vectorise into them);
//   - what is called from outside a region is ALTCLIP_KERNEL_ENTRY (never inlined into the
//     caller): GCC 12's own AVX-512 headers warn "'__Y' is used uninitialized" about their
//     _mm*_undefined_* helpers wherever they are inlined, and that warning is silenced in
//     the regions only.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>

#include "../errors.hpp"
#include "../isa.hpp"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define ALTCLIP_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define ALTCLIP_X86 0
#endif

// GCC 12's false "'__Y' is (may be) used uninitialized" in its own intrinsics headers, off
// in the regions and in the thread pool's loops (into which -march=native inlines a
// region's lambdas).
#if defined(__GNUC__) && !defined(__clang__)
#define ALTCLIP_INTRINSIC_WARNINGS_OFF                                                         \
    _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wuninitialized\"") \
        _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#define ALTCLIP_INTRINSIC_WARNINGS_ON _Pragma("GCC diagnostic pop")
#else
#define ALTCLIP_INTRINSIC_WARNINGS_OFF
#define ALTCLIP_INTRINSIC_WARNINGS_ON
#endif

#if ALTCLIP_X86
#if defined(__clang__)
#define ALTCLIP_AVX512_BEGIN                                                                                      \
    _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx512vnni,avx2,fma,f16c,bmi,bmi2\"))), apply_to = function)")
#define ALTCLIP_AVX512_END _Pragma("clang attribute pop")
#else
#define ALTCLIP_AVX512_BEGIN                                                                              \
    _Pragma("GCC push_options")                                                                           \
    _Pragma("GCC target(\"avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx512vnni,avx2,fma,f16c,bmi,bmi2\")") \
    ALTCLIP_INTRINSIC_WARNINGS_OFF
#define ALTCLIP_AVX512_END ALTCLIP_INTRINSIC_WARNINGS_ON _Pragma("GCC pop_options")
#endif
// AMX: the AVX-512 set and the tile instructions, bf16 and int8 (kernels/amx_attention.hpp, amx_gemm.hpp).
#if defined(__clang__)
#define ALTCLIP_AMX_BEGIN                                                                                         \
    _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx512vnni,avx2,fma,f16c,bmi,bmi2,amx-tile,amx-bf16,amx-int8\"))), apply_to = function)")
#define ALTCLIP_AMX_END _Pragma("clang attribute pop")
#else
#define ALTCLIP_AMX_BEGIN                                                                                 \
    _Pragma("GCC push_options")                                                                           \
    _Pragma("GCC target(\"avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx512vnni,avx2,fma,f16c,bmi,bmi2,amx-tile,amx-bf16,amx-int8\")") \
    ALTCLIP_INTRINSIC_WARNINGS_OFF
#define ALTCLIP_AMX_END ALTCLIP_INTRINSIC_WARNINGS_ON _Pragma("GCC pop_options")
#endif
#if defined(__clang__)
#define ALTCLIP_AVX2_BEGIN _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,f16c,bmi,bmi2\"))), apply_to = function)")
#define ALTCLIP_AVX2_END _Pragma("clang attribute pop")
#else
#define ALTCLIP_AVX2_BEGIN                                                   \
    _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma,f16c,bmi,bmi2\")") \
        ALTCLIP_INTRINSIC_WARNINGS_OFF
#define ALTCLIP_AVX2_END ALTCLIP_INTRINSIC_WARNINGS_ON _Pragma("GCC pop_options")
#endif
#define ALTCLIP_KERNEL_ENTRY __attribute__((noinline))
// A small kernel helper that must be inlined into its loop whatever the consumer's -O level: at
// -O2, GCC 12 left store_sliver_units8 out of line with its registers spilled (attention 3-5% slower).
#define ALTCLIP_KERNEL_INLINE __attribute__((always_inline)) inline
#else
#define ALTCLIP_AVX2_BEGIN
#define ALTCLIP_AVX2_END
#define ALTCLIP_AVX512_BEGIN
#define ALTCLIP_AVX512_END
#define ALTCLIP_AMX_BEGIN
#define ALTCLIP_AMX_END
#define ALTCLIP_KERNEL_ENTRY
#define ALTCLIP_KERNEL_INLINE inline
#endif

namespace altclip::kernels {

/// "avx512_bf16" -> Isa::avx512_bf16; throws InvalidArgument naming `what` otherwise.
inline Isa parse_isa(const std::string& s, const std::string& what) {
    for (int i = 0; i <= static_cast<int>(Isa::best); ++i)
        if (s == isa_name(static_cast<Isa>(i))) return static_cast<Isa>(i);
    throw InvalidArgument(what + "='" + s +
                          "' is not an instruction-set level; use one of portable, avx2, avx512, avx512_vnni, "
                          "avx512_bf16, amx (or unset it for the best this CPU allows)");
}

namespace cpu_detail {

#if ALTCLIP_X86
inline std::uint64_t xgetbv0() {
    std::uint32_t lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (static_cast<std::uint64_t>(hi) << 32) | lo;
}
#endif

/// Asks Linux for the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA);
/// a tile instruction before that raises SIGILL. True when granted.
inline bool request_amx() {
#if ALTCLIP_X86 && defined(__linux__) && defined(__x86_64__)
    long r = 0;
    __asm__ volatile("syscall" : "=a"(r) : "0"(158L /* SYS_arch_prctl */), "D"(0x1023L), "S"(18L) : "rcx", "r11", "memory");
    return r == 0;
#else
    return false;
#endif
}

inline CpuInfo detect() {
    CpuInfo info;
#if ALTCLIP_X86
    unsigned a = 0, b = 0, c = 0, d = 0;
    const unsigned max_leaf = static_cast<unsigned>(__get_cpuid_max(0, nullptr));
    __cpuid(0, a, b, c, d);  // the vendor: "GenuineIntel" in ebx, edx, ecx
    const bool intel = b == 0x756e6547u && d == 0x49656e69u && c == 0x6c65746eu;
    bool fma = false, f16c = false, bmi1 = false, bmi2 = false, avx = false, osxsave = false, avx2 = false, f = false, dq = false, bw = false, vl = false,
         vnni = false, bf16 = false, amx_tile = false, amx_bf16 = false, amx_int8 = false;
    if (max_leaf >= 1 && __get_cpuid(1, &a, &b, &c, &d)) {
        fma = c & (1u << 12);
        osxsave = c & (1u << 27);
        avx = c & (1u << 28);
        f16c = c & (1u << 29);
    }
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        avx2 = b & (1u << 5);
        bmi1 = b & (1u << 3);
        bmi2 = b & (1u << 8);
        f = b & (1u << 16);
        dq = b & (1u << 17);
        bw = b & (1u << 30);
        vl = b & (1u << 31);
        vnni = c & (1u << 11);
        amx_bf16 = d & (1u << 22);
        amx_tile = d & (1u << 24);
        amx_int8 = d & (1u << 25);
        const unsigned sub = a;
        if (sub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            bf16 = a & (1u << 5);
        }
    }
    const std::uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    const bool os_avx = (xcr0 & 0x6) == 0x6;
    const bool os_avx512 = os_avx && (xcr0 & 0xE0) == 0xE0;
    const bool os_amx = (xcr0 & 0x60000) == 0x60000;
    std::string& fs = info.features;
    auto add = [&fs](bool have, const char* name) {
        if (have) fs += (fs.empty() ? "" : " ") + std::string(name);
    };
    add(avx2 && os_avx, "avx2");
    add(fma && os_avx, "fma");
    add(f16c && os_avx, "f16c");
    add(f && os_avx512, "avx512f");
    add(bw && os_avx512, "avx512bw");
    add(vl && os_avx512, "avx512vl");
    add(vnni && os_avx512, "avx512_vnni");
    add(bf16 && os_avx512, "avx512_bf16");
    add(amx_tile && os_amx, "amx_tile");
    add(amx_bf16 && os_amx, "amx_bf16");
    add(amx_int8 && os_amx, "amx_int8");
    if (avx && avx2 && fma && f16c && bmi1 && bmi2 && os_avx) info.supported = Isa::avx2;
    if (info.supported == Isa::avx2 && f && dq && bw && vl && os_avx512) info.supported = Isa::avx512;
    if (info.supported == Isa::avx512 && vnni) info.supported = Isa::avx512_vnni;
    if (info.supported == Isa::avx512_vnni && bf16) info.supported = Isa::avx512_bf16;
    info.bf16_dot_half_rate = intel && info.supported == Isa::avx512_bf16;
    if (info.supported == Isa::avx512_bf16 && amx_tile && amx_bf16 && amx_int8 && os_amx && request_amx())
        info.supported = Isa::amx;
    if (static_cast<unsigned>(__get_cpuid_max(0x80000000u, nullptr)) >= 0x80000004u) {
        char brand[49] = {};
        for (unsigned i = 0; i < 3; ++i) {
            __get_cpuid(0x80000002u + i, &a, &b, &c, &d);
            const unsigned regs[4] = {a, b, c, d};
            for (int r = 0; r < 4; ++r)
                for (int k = 0; k < 4; ++k) brand[16 * i + 4 * r + k] = static_cast<char>((regs[r] >> (8 * k)) & 0xFF);
        }
        std::string s(brand);
        const auto first = s.find_first_not_of(' '), last = s.find_last_not_of(' ');
        info.brand = first == std::string::npos ? "" : s.substr(first, last - first + 1);
    }
#endif
    if (info.features.empty()) info.features = "none";
    if (const char* cap = std::getenv("ALTCLIP_MAX_ISA"); cap != nullptr && *cap != '\0')
        info.env_cap = parse_isa(cap, "ALTCLIP_MAX_ISA");
    return info;
}

}  // namespace cpu_detail

}  // namespace altclip::kernels

namespace altclip {

/// This CPU, read once per process (ALTCLIP_MAX_ISA too). Throws InvalidArgument when
/// ALTCLIP_MAX_ISA holds no level name.
inline const CpuInfo& cpu_info() {
    static const CpuInfo info = kernels::cpu_detail::detect();
    return info;
}

}  // namespace altclip
