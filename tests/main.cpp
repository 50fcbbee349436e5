// The Catch2 test runner. Under ALTCLIP_MAX_ISA (each kernel level run by ctest, see
// tests/CMakeLists.txt) it first says which level runs, and skips (exit 77) a level this
// CPU does not have, so the log shows which paths were tested and which the CPU lacks; the
// same for the run forced through oneDNN on a CPU where oneDNN has no bf16 or no exact int8
// matmul (before AVX-512, before VNNI).
#define CATCH_CONFIG_RUNNER
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include <altclip/kernels/cpu.hpp>
#include <altclip/kernels/onednn.hpp>

int main(int argc, char** argv) {
    if (const char* cap = std::getenv("ALTCLIP_MAX_ISA"); cap != nullptr && *cap != '\0') {
        try {
            const altclip::CpuInfo& cpu = altclip::cpu_info();
            if (cpu.env_cap > cpu.supported) {
                std::printf("kernel level %s: not on this CPU (%s), skipped\n", cap, cpu.describe().c_str());
                return 77;
            }
            std::printf("kernel level %s on %s\n", cap, cpu.describe().c_str());
        } catch (const altclip::Error& e) {
            std::printf("ALTCLIP_MAX_ISA: %s\n", e.what());
            return 2;
        }
    }
#if ALTCLIP_WITH_ONEDNN
    // Forced through oneDNN (ctest's altclip_tests_onednn) on a CPU where it has no bf16 or no
    // exact int8 matmul: those models would refuse to load (the error is tested in
    // test_onednn.cpp), so the run is reported as skipped, as a kernel level the CPU lacks.
    // ALTCLIP_ONEDNN read as the library reads it (use_onednn: only the variable turns it on).
    if (const char* e = std::getenv("ALTCLIP_ONEDNN"); e != nullptr && *e != '\0') {
        try {
            if (!altclip::kernels::onednn::use_onednn(altclip::OnednnUse::automatic))
                return Catch::Session().run(argc, argv);
            using Kind = altclip::kernels::onednn::PackedWeight::Kind;
            const altclip::kernels::onednn::Context ctx(std::make_shared<altclip::kernels::ThreadPool>(1));
            if (!ctx.has_matmul(Kind::bf16) || !ctx.has_matmul(Kind::s8)) {
                std::printf("ALTCLIP_ONEDNN=%s: oneDNN has no %s matmul on this CPU (%s), skipped\n", e,
                            ctx.has_matmul(Kind::bf16) ? "exact int8 (VNNI)" : "bf16",
                            altclip::cpu_info().describe().c_str());
                return 77;
            }
        } catch (const altclip::Error& err) {
            std::printf("ALTCLIP_ONEDNN: %s\n", err.what());
            return 2;
        }
    }
#endif
    return Catch::Session().run(argc, argv);
}
