// Options for loading a model.
#pragma once

namespace altclip {

struct ModelOptions {
    /// Threads one call uses (0 = all cores). Concurrent calls on one model share them.
    int num_threads = 0;
    /// bf16 files: false (default) multiplies with bfloat16 activations on CPUs with
    /// AVX512_BF16 (about twice the float32 speed); true widens the weights to float32 inside
    /// the kernels, so results equal the reference run on the same rounded weights.
    /// f32 and f16 files always compute in float32.
    bool exact = false;
};

}  // namespace altclip
