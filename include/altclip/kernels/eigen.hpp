// Eigen, included with the warnings its own code raises under GCC 12 silenced here only (a
// consumer's -Wall -Wextra must stay quiet): unused variables in its AVX/AVX-512 packet
// math, and "'__Y' may be used uninitialized" from GCC's intrinsics headers inlined into its
// matrix kernels under -march=native.
#pragma once

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
