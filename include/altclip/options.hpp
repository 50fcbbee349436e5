// Options for loading a model.
#pragma once

#include "isa.hpp"

namespace altclip {

/// Whether a model's bf16 and q8 matrix products run through oneDNN (ModelOptions::onednn).
enum class OnednnUse {
    automatic,  // ALTCLIP_ONEDNN=1|0 when set, else off (why: kernels/onednn.hpp)
    on,         // at any level (tests, comparisons); an InvalidArgument in a build without oneDNN
    off,        // altclip's own kernels only
};

struct ModelOptions {
    /// Threads one call uses (0 = all cores, else 1 to kMaxThreads in limits.hpp; another
    /// count is an InvalidArgument). Concurrent calls on one model share them.
    int num_threads = 0;
    /// Microseconds an idle thread of the model's pool polls for work before it sleeps (0 to
    /// kMaxSpinMicroseconds in limits.hpp, else an InvalidArgument): the pool's workers between
    /// parallel calls, a caller for its helpers' last tasks. Waking a sleeping thread cost ~50 us
    /// per call on the VMs this was measured on (bench/pool_bench.cpp), a model makes ~15 calls
    /// per layer: 0 sleeps at once (no CPU used between calls; a text ~10% slower there).
    int spin_us = 200;
    /// bf16 and q8 files: false (default) multiplies with activations rounded to the
    /// weights' precision (bfloat16 with AVX512_BF16; int8 with a per-row scale with
    /// AVX512_VNNI), for about 2x and 4x the float32 peak; true widens the weights to float32
    /// inside the kernels, so results equal the reference run on the same rounded weights.
    /// f32 and f16 files always compute in float32.
    bool exact = false;
    /// The highest instruction-set level the kernels may use (isa.hpp); the default, best,
    /// takes what the CPU allows. Lower levels give the same results within rounding: for
    /// tests and comparisons. The environment variable ALTCLIP_MAX_ISA caps it further.
    Isa max_isa = Isa::best;
    /// oneDNN (kernels/onednn.hpp) for the products of bf16 weights and the ViT's int8 ones,
    /// for comparisons: builds find it with CMake (Debian: libdnnl-dev); model.matmul_engine()
    /// says what runs. exact = true never uses it.
    OnednnUse onednn = OnednnUse::automatic;
};

}  // namespace altclip
