// Input limits that no real input reaches, so that a hostile or broken input fails with a
// clear error instead of exhausting memory or overflowing sizes (docs/reliability.md).
// The model file's (kMaxHeaderBytes, kMaxRank) are in format/container.hpp.
#pragma once

#include <cstddef>
#include <cstdint>

namespace altclip {

/// Longest text the tokenizer accepts, in bytes (1 MiB). The model reads at most 512 tokens
/// (a few kB of text); longer texts are truncated after tokenizing the whole text, so this
/// only bounds the work spent on text that is thrown away.
inline constexpr std::size_t kMaxTextBytes = std::size_t(1) << 20;

/// Most texts or images in one call of the tokenizer, the image processor or a tower's
/// forward (65,536). Far above any batch that fits in memory at the released model's size
/// (65,536 x 514 tokens x 1024 floats is 138 GB); it keeps every size computed from a batch
/// far from overflowing.
inline constexpr std::int64_t kMaxBatchSize = std::int64_t(1) << 16;

/// Largest image accepted (width * height), checked from the header before decoding.
inline constexpr std::int64_t kMaxImagePixels = 100'000'000;
/// Largest width or height accepted (images, the processor's sizes, the vision tower's input).
inline constexpr int kMaxImageSide = 65'536;

/// Most threads a model's pool may have (ModelOptions::num_threads): 1,024, far above the
/// cores of any machine this runs on; past it, a typo (100000) is an error, not an attempt
/// to start that many threads.
inline constexpr int kMaxThreads = 1024;

/// Longest spin of an idle pool thread (ModelOptions::spin_us): 100,000 us (0.1 s); past it,
/// a thread left polling would hold its core long after a call.
inline constexpr int kMaxSpinMicroseconds = 100'000;

}  // namespace altclip
