// Options for loading a model.
#pragma once

#include "isa.hpp"

namespace altclip {

struct ModelOptions {
    /// Threads one call uses (0 = all cores, else 1 to kMaxThreads in limits.hpp; another
    /// count is an InvalidArgument). Concurrent calls on one model share them.
    int num_threads = 0;
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
};

}  // namespace altclip
