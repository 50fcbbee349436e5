// The activation a Linear's output goes through (the MLPs': CLIP's quick_gelu, XLM-R's
// exact GELU), given to kernels::linear so a kernel can apply it while the result is still
// in registers (avx2::run's write-out) instead of in another pass over y.
#pragma once

namespace altclip::kernels {

enum class Activation {
    none,
    quick_gelu,  // x * sigmoid(1.702 x)
    gelu_erf,    // 0.5 x (1 + erf(x / sqrt 2))
};

}  // namespace altclip::kernels
