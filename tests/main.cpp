// The Catch2 test runner. Under ALTCLIP_MAX_ISA (each kernel level run by ctest, see
// tests/CMakeLists.txt) it first says which level runs, and skips (exit 77) a level this
// CPU does not have, so the log shows which paths were tested and which the CPU lacks.
#define CATCH_CONFIG_RUNNER
#include <cstdio>
#include <cstdlib>
#include <string>

#include <catch2/catch.hpp>

#include <altclip/kernels/cpu.hpp>

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
    return Catch::Session().run(argc, argv);
}
