// Per-call activation memory. Buffer: an uninitialised float array (std::vector<float> would
// zero every element first, for activations that are written before they are read). Scratch:
// the buffers of one forward pass, by slot, allocated by the first layer and reused by the
// others (so the pages of large activations are faulted in once a pass, not once a layer);
// freed when the pass ends, so a loaded model holds no per-call state. Measurements:
// bench/RESULTS.md, "Measurements behind design choices".
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace altclip::kernels {

class Buffer {
public:
    Buffer() = default;
    explicit Buffer(std::int64_t n) : data_(new float[static_cast<std::size_t>(n)]), size_(n) {}
    float* data() { return data_.get(); }
    const float* data() const { return data_.get(); }
    std::int64_t size() const { return size_; }
    float& operator[](std::int64_t i) { return data_[static_cast<std::size_t>(i)]; }
    const float& operator[](std::int64_t i) const { return data_[static_cast<std::size_t>(i)]; }

private:
    std::unique_ptr<float[]> data_;  // new float[n]: default-initialised, i.e. left as is
    std::int64_t size_ = 0;
};

/// Buffers of one forward pass. Each use site has its own slot (the model's slots:
/// modules/scratch_slots.hpp); a
/// slot's buffer grows to the largest size asked for and is handed out again, uninitialised.
class Scratch {
public:
    float* get(int slot, std::int64_t n) {
        if (static_cast<std::size_t>(slot) >= buffers_.size()) buffers_.resize(static_cast<std::size_t>(slot) + 1);
        Buffer& b = buffers_[static_cast<std::size_t>(slot)];
        if (b.size() < n) b = Buffer(n);
        return b.data();
    }

private:
    std::vector<Buffer> buffers_;
};

}  // namespace altclip::kernels
