// Eigen, included once before the kernels include it, with the warnings that come from
// inside Eigen 3.4's own headers silenced for those headers only (the pragmas apply to the
// lines between push and pop): with -march=native, GCC 12 -Wall reports unused variables
// in Eigen's AVX and AVX-512 PacketMath.h. A consumer's -Wall -Wextra then shows warnings
// from their code and ours, not from Eigen's.
#pragma once

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#endif
#include <Eigen/Core>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
