// An uninitialised float buffer for per-call activations: std::vector<float> would zero
// every element first, which shows up in profiles for the 4 MB MLP activations of an image.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace altclip::kernels {

class Buffer {
public:
    explicit Buffer(std::int64_t n) : data_(new float[static_cast<std::size_t>(n)]), size_(n) {}
    float* data() { return data_.get(); }
    const float* data() const { return data_.get(); }
    std::int64_t size() const { return size_; }
    float& operator[](std::int64_t i) { return data_[static_cast<std::size_t>(i)]; }
    const float& operator[](std::int64_t i) const { return data_[static_cast<std::size_t>(i)]; }

private:
    std::unique_ptr<float[]> data_;  // new float[n]: default-initialised, i.e. left as is
    std::int64_t size_;
};

}  // namespace altclip::kernels
