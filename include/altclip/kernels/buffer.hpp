// Per-call activation memory. Buffer: an uninitialised float array (std::vector<float> would
// zero every element first, for activations that are written before they are read). Scratch:
// the buffers of one forward pass, by slot, allocated by the first layer and reused by the
// others (so the pages of large activations are faulted in once a pass, not once a layer);
// freed when the pass ends, so a loaded model holds no per-call state. Workspace: the
// kernels' own buffers (packed x, tile sums, attention panels, oneDNN's), held by the Scratch
// of a pass in the same way. Measurements: bench/RESULTS.md, "Measurements behind design choices".
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

/// x packed into 32-bit units by packed::pack_x (gemm_packed.hpp): the units, and for int8
/// the per-block row sums and the row scales.
struct PackedXBuffers {
    std::vector<std::uint32_t> units;
    std::vector<std::int32_t> xsum;
    std::vector<float> xscale;
    std::vector<float> rows;  // x's rows block by block (avx2::dot_q8)
};

/// The buffers one thread uses for the kernels in one call, by use. Each grows to the largest
/// size asked for and is reused as it is (the kernels start them on a cache line with
/// packed::aligned_at_least where their results could depend on the address).
struct alignas(64) KernelBuffers {  // a cache line apart: the slots grow from different threads
    // Matrix products (gemm_packed.hpp, avx2.hpp, onednn.hpp). The caller's: x as the kernel
    // reads it, made once per product and read by every thread of the call.
    PackedXBuffers x;                  // x packed (packed::linear, avx2::linear)
    PackedXBuffers chained;            // avx2::linear_chain: the first product's result, packed as the second's x
    std::vector<std::uint16_t> xb;     // x rounded to bfloat16 (oneDNN)
    std::vector<std::int8_t> xq;       // x quantized to int8 (oneDNN), with its row scales:
    std::vector<float> xscale;
    std::vector<float> addend;         // linear_many: a residual's product before it is added,
    std::vector<float> normed;         // and x normalized (a RowNorm), where the kernels do not do it as they read
    // A slot's: what a task writes.
    std::vector<float> tile_sums;      // packed::run: a task's tile sums between k blocks
    std::vector<std::uint32_t> panels; // packed::run, avx2::run: a task's panels of W for one k block
    std::vector<unsigned char> dnnl_scratch;  // oneDNN's scratchpad for one part
    std::vector<float> part;           // one oneDNN part's [n, cols] result
    // Attention of one (sequence, head) (ops.hpp's and avx2.hpp's attention_head; a slot's).
    std::vector<std::uint32_t> keys, values;  // K^T panels, V panels
    std::vector<float> scores;                // one sliver's scores, then probabilities
    PackedXBuffers q, p;                      // a sliver of Q, packed; its probabilities, packed
    // AMX attention (amx_attention.hpp): Q rows, K^T and V tiles, 16 rows of probabilities as
    // bfloat16 pairs; 16 output rows.
    std::vector<std::uint32_t> amx_q, amx_k, amx_v, amx_p;
    std::vector<float> amx_out;
    std::vector<std::uint16_t> amx_keep;  // the keys attended, a bit each, per block of 16
    // AMX products (amx_gemm.hpp): x as A tiles (the ViT's) or B tiles (a text's int8), the
    // caller's; the next product's A tiles made by a chained product's write-out (the MLP's fc1
    // for fc2, the caller's); 64 rows of W widened to bfloat16 tiles (a slot's); amx_out holds
    // the C tiles and the sums between k chunks.
    std::vector<std::uint32_t> amx_x, amx_next, amx_w;
    std::vector<float> amx_rowmax;  // a chained int8 product's largest |y| per row (a slot's: of its columns)
    std::vector<float> xscale2;     // the row scales of a chained product's second x (the caller's)
};

/// The kernels' buffers of one call (a forward pass: Scratch::workspace): the calling
/// thread's, and one set per slot of a parallel loop (ThreadPool::parallel_for_slots), the
/// slot numbering the threads that take part in that loop. Slots, not threads: a worker
/// thread serves every caller of a shared pool, so its buffers must come from the call it is
/// working for, and a slot is used by one thread at a time within one call. Slots are made by
/// the caller before the loop (slots(count)), never while it runs. Buffers are kept for the
/// next product of the call (pages faulted once a pass, not once a layer) and freed with the
/// Workspace; a loaded model keeps none. Not to be shared by concurrent calls.
class Workspace {
public:
    KernelBuffers& caller() { return caller_; }
    /// Buffers for slots [0, count) of a parallel loop, made now (before the loop starts).
    KernelBuffers* slots(int count) {
        if (static_cast<int>(slots_.size()) < count) slots_.resize(static_cast<std::size_t>(count));
        return slots_.data();
    }

private:
    KernelBuffers caller_;
    std::vector<KernelBuffers> slots_;
};

/// Buffers of one forward pass. Each use site has its own slot (the model's slots:
/// modules/scratch_slots.hpp); a
/// slot's buffer grows to the largest size asked for and is handed out again, uninitialised.
/// The kernels' buffers for the pass are its workspace().
class Scratch {
public:
    float* get(int slot, std::int64_t n) {
        if (static_cast<std::size_t>(slot) >= buffers_.size()) buffers_.resize(static_cast<std::size_t>(slot) + 1);
        Buffer& b = buffers_[static_cast<std::size_t>(slot)];
        if (b.size() < n) b = Buffer(n);
        return b.data();
    }
    Workspace& workspace() { return workspace_; }

private:
    std::vector<Buffer> buffers_;
    Workspace workspace_;
};

}  // namespace altclip::kernels
