// The vision tower, mirroring transformers' AltCLIPVisionModel (models/altclip/modeling_altclip.py):
// a CLIP ViT with pre-LN encoder layers and quick_gelu. One struct per nn.Module, members
// named as the reference's attributes, so a key like
// "vision_model.encoder.layers.3.self_attn.q_proj.weight" reads off the tree.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "errors.hpp"
#include "format/model_file.hpp"
#include "inputs.hpp"  // PixelView, PixelValues
#include "kernels/buffer.hpp"
#include "kernels/gemm.hpp"
#include "kernels/interpolate.hpp"
#include "kernels/ops.hpp"
#include "limits.hpp"
#include "modeling_outputs.hpp"
#include "modules/scratch_slots.hpp"
#include "modules/self_attention.hpp"
#include "modules/setup.hpp"
#include "modules/weights.hpp"
#include "options.hpp"
#include "tensor.hpp"

namespace altclip {

/// AltCLIPVisionEmbeddings: patch conv (no bias), class token, position embeddings.
struct AltCLIPVisionEmbeddings {
    const float* class_embedding = nullptr;   // [hidden]
    kernels::WeightMatrix patch_embedding;    // [hidden, channels, patch, patch] as [hidden, channels*patch*patch]
    const float* position_embedding = nullptr;  // [num_positions, hidden]
    AltCLIPVisionConfig config;

    void load(detail::WeightLoader& w, const std::string& prefix, const AltCLIPVisionConfig& c) {
        config = c;
        class_embedding = w.get(prefix + "class_embedding", {c.hidden_size});
        patch_embedding = w.weight_matrix(prefix + "patch_embedding.weight",
                                          {c.hidden_size, c.num_channels, c.patch_size, c.patch_size});
        position_embedding = w.get(prefix + "position_embedding.weight", {c.num_positions(), c.hidden_size});
    }

    /// One image [channels, height, width] -> out [1 + patches, hidden].
    void forward(const float* image, std::int64_t height, std::int64_t width, bool interpolate_pos_encoding,
                 float* out, kernels::Scratch& scratch, kernels::ThreadPool* pool) const {
        const std::int64_t p = config.patch_size, C = config.num_channels, H = config.hidden_size;
        const std::int64_t gh = height / p, gw = width / p, n = gh * gw, k = C * p * p;
        // im2col: patch (y, x) row-major, each flattened as the conv weight [C, p, p].
        std::vector<float> cols(n * k);
        for (std::int64_t gy = 0; gy < gh; ++gy)
            for (std::int64_t gx = 0; gx < gw; ++gx) {
                float* dst = cols.data() + (gy * gw + gx) * k;
                for (std::int64_t c = 0; c < C; ++c)
                    for (std::int64_t y = 0; y < p; ++y) {
                        const float* src = image + (c * height + gy * p + y) * width + gx * p;
                        std::copy(src, src + p, dst + (c * p + y) * p);
                    }
            }
        kernels::linear(cols.data(), n, k, patch_embedding, nullptr, H, out + H, pool, scratch.workspace());
        std::copy(class_embedding, class_embedding + H, out);
        const std::int64_t positions = config.num_positions() - 1;
        const bool same_grid = n == positions && height == width;
        if (!interpolate_pos_encoding || same_grid) {
            for (std::int64_t i = 0; i < (n + 1) * H; ++i) out[i] += position_embedding[i];
            return;
        }
        // interpolate_pos_encoding: the class position as is, the patch grid resized bicubically.
        const std::int64_t side = static_cast<std::int64_t>(std::sqrt(static_cast<double>(positions)));
        std::vector<float> grid(n * H);
        kernels::bicubic_resize_channels_last(position_embedding + H, side, side, H, grid.data(), gh, gw);
        for (std::int64_t i = 0; i < H; ++i) out[i] += position_embedding[i];
        for (std::int64_t i = 0; i < n * H; ++i) out[H + i] += grid[i];
    }
};

/// AltCLIPAttention: multi-head self-attention, no mask.
struct AltCLIPAttention {
    detail::LinearParams q_proj, k_proj, v_proj, out_proj;
    std::int64_t num_heads = 0;

    void load(detail::WeightLoader& w, const std::string& prefix, const AltCLIPVisionConfig& c) {
        const auto H = c.hidden_size;
        q_proj = w.linear(prefix + "q_proj", H, H, true);
        k_proj = w.linear(prefix + "k_proj", H, H, true);
        v_proj = w.linear(prefix + "v_proj", H, H, true);
        out_proj = w.linear(prefix + "out_proj", H, H, true);
        num_heads = c.num_attention_heads;
    }
    /// out = attention(x), or with `add` out += attention(x) (the residual connection); with
    /// `norm`, of layer_norm(x).
    void forward(const float* x, std::int64_t batch, std::int64_t seq, float* out, kernels::Scratch& scratch,
                 kernels::ThreadPool* pool, bool add = false, const kernels::RowNorm* norm = nullptr) const {
        float* ctx = scratch.get(detail::kSlotCtx, batch * seq * q_proj.out);
        detail::self_attention(x, batch, seq, q_proj, k_proj, v_proj, num_heads, nullptr, ctx, scratch, pool, nullptr,
                               norm);
        const kernels::Product o{&out_proj.weight, out_proj.bias, out_proj.out, out, add};
        kernels::linear_many(ctx, batch * seq, out_proj.in, &o, 1, pool, scratch.workspace());
    }
    /// first[b] += attention(x)'s row b * seq (each sequence's first row, the class token),
    /// with `norm` of layer_norm(x): the keys and values of every row; the query, its attention
    /// (kernels::attention_query, float32) and the output projection of the first rows only.
    /// first: [batch, hidden].
    void forward_first_rows(const float* x, std::int64_t batch, std::int64_t seq, float* first,
                            kernels::Scratch& scratch, kernels::ThreadPool* pool,
                            const kernels::RowNorm* norm = nullptr) const {
        const std::int64_t H = q_proj.out, d = H / num_heads, rows = batch * seq;
        float* const k = scratch.get(detail::kSlotK, rows * H);
        float* const v = scratch.get(detail::kSlotV, rows * H);
        float* const xq = scratch.get(detail::kSlotA, batch * H);  // x's first rows (the class tokens')
        float* const q = scratch.get(detail::kSlotQ, batch * H);
        float* const ctx = scratch.get(detail::kSlotCtx, batch * H);
        kernels::Workspace& ws = scratch.workspace();
        const kernels::Product kv[2] = {{&k_proj.weight, k_proj.bias, H, k}, {&v_proj.weight, v_proj.bias, H, v}};
        kernels::linear_many(x, rows, q_proj.in, kv, 2, pool, ws, norm);
        for (std::int64_t b = 0; b < batch; ++b) std::copy(x + b * seq * H, x + (b * seq + 1) * H, xq + b * H);
        const kernels::Product query{&q_proj.weight, q_proj.bias, H, q};
        kernels::linear_many(xq, batch, q_proj.in, &query, 1, pool, ws, norm);
        kernels::parallel_for(pool, batch * num_heads, [&](std::int64_t t) {
            const std::int64_t b = t / num_heads, off = (t % num_heads) * d;
            kernels::attention_query(q + b * H + off, k + b * seq * H + off, v + b * seq * H + off, seq, d, H,
                                     ctx + b * H + off);
        });
        const kernels::Product o{&out_proj.weight, out_proj.bias, out_proj.out, first, true};
        kernels::linear_many(ctx, batch, out_proj.in, &o, 1, pool, ws);
    }
};

/// AltCLIPMLP: fc1 -> quick_gelu -> fc2.
struct AltCLIPMLP {
    detail::LinearParams fc1, fc2;

    void load(detail::WeightLoader& w, const std::string& prefix, const AltCLIPVisionConfig& c) {
        fc1 = w.linear(prefix + "fc1", c.intermediate_size, c.hidden_size, true);
        fc2 = w.linear(prefix + "fc2", c.hidden_size, c.intermediate_size, true);
    }
    /// out = mlp(x), or with `add` out += mlp(x) (the residual connection); with `norm`, of
    /// layer_norm(x).
    void forward(const float* x, std::int64_t rows, float* out, kernels::Scratch& scratch, kernels::ThreadPool* pool,
                 bool add = false, const kernels::RowNorm* norm = nullptr) const {
        float* h = scratch.get(detail::kSlotInter, rows * fc1.out);
        const kernels::Product up{&fc1.weight, fc1.bias, fc1.out, h, false, kernels::Activation::quick_gelu};
        const kernels::Product o{&fc2.weight, fc2.bias, fc2.out, out, add};
        kernels::linear_chain(x, rows, fc1.in, up, o, pool, scratch.workspace(), norm);
    }
};

/// AltCLIPEncoderLayer (pre-LN): h += self_attn(layer_norm1(h)); h += mlp(layer_norm2(h)).
struct AltCLIPEncoderLayer {
    AltCLIPAttention self_attn;
    detail::LayerNormParams layer_norm1, layer_norm2;
    AltCLIPMLP mlp;

    void load(detail::WeightLoader& w, const std::string& prefix, const AltCLIPVisionConfig& c) {
        self_attn.load(w, prefix + "self_attn.", c);
        layer_norm1 = w.layer_norm(prefix + "layer_norm1", c.hidden_size, c.layer_norm_eps);
        mlp.load(w, prefix + "mlp.", c);
        layer_norm2 = w.layer_norm(prefix + "layer_norm2", c.hidden_size, c.layer_norm_eps);
    }
    /// h: [batch * seq, hidden], updated in place.
    void forward(float* h, std::int64_t batch, std::int64_t seq, kernels::Scratch& scratch,
                 kernels::ThreadPool* pool) const {
        // The layer norms are applied as the products read h (linear_many), the residuals added
        // as they write it.
        const kernels::RowNorm norm1{layer_norm1.weight, layer_norm1.bias, layer_norm1.eps};
        const kernels::RowNorm norm2{layer_norm2.weight, layer_norm2.bias, layer_norm2.eps};
        self_attn.forward(h, batch, seq, h, scratch, pool, /*add=*/true, &norm1);  // h += attn(layer_norm1(h))
        mlp.forward(h, batch * seq, h, scratch, pool, /*add=*/true, &norm2);  // h += mlp(layer_norm2(h))
    }
    /// The layer's output at each sequence's first row only, first: [batch, hidden]; h
    /// [batch * seq, hidden] is read, not changed. A row's output depends on the other rows
    /// only through the keys and values, so the rest of the layer runs on `batch` rows.
    void forward_first_rows(const float* h, std::int64_t batch, std::int64_t seq, float* first,
                            kernels::Scratch& scratch, kernels::ThreadPool* pool) const {
        const kernels::RowNorm norm1{layer_norm1.weight, layer_norm1.bias, layer_norm1.eps};
        const kernels::RowNorm norm2{layer_norm2.weight, layer_norm2.bias, layer_norm2.eps};
        const std::int64_t H = layer_norm1.n;
        for (std::int64_t b = 0; b < batch; ++b) std::copy(h + b * seq * H, h + (b * seq + 1) * H, first + b * H);
        self_attn.forward_first_rows(h, batch, seq, first, scratch, pool, &norm1);
        mlp.forward(first, batch, first, scratch, pool, /*add=*/true, &norm2);
    }
};

/// AltCLIPEncoder: the stack of layers.
struct AltCLIPEncoder {
    std::vector<AltCLIPEncoderLayer> layers;

    void load(detail::WeightLoader& w, const std::string& prefix, const AltCLIPVisionConfig& c) {
        layers.resize(static_cast<std::size_t>(c.num_hidden_layers));
        for (std::size_t i = 0; i < layers.size(); ++i) layers[i].load(w, prefix + "layers." + std::to_string(i) + ".", c);
    }
};

/// AltCLIPVisionModel: embeddings -> pre_layrnorm -> encoder; pooler = post_layernorm(CLS).
/// Immutable after construction; forward() is const and safe to call from several threads.
/// from_file(path, options), config() and isa(): detail::Tower (modules/setup.hpp).
class AltCLIPVisionModel : public detail::Tower<AltCLIPVisionModel, AltCLIPVisionConfig> {
public:
    /// The vision tower of a model file alone (tensors under "vision_model.").
    explicit AltCLIPVisionModel(std::shared_ptr<const ModelFile> file, const ModelOptions& options = {}) {
        load_alone(std::move(file), options);
    }
    /// Used by AltCLIPModel, whose set-up (loader, pool) spans the whole file.
    explicit AltCLIPVisionModel(detail::ModelSetup& setup) { load_in(setup); }

    /// pixel_values [batch, channels, height, width]. Other sizes than the config's
    /// image_size need interpolate_pos_encoding, as in the reference.
    BaseModelOutputWithPooling forward(const PixelView& px, bool interpolate_pos_encoding = false,
                                       bool output_hidden_states = false) const try {
        const auto& c = config_;
        check(px, interpolate_pos_encoding);
        kernels::ThreadPool* pool = pool_.get();
        const std::int64_t B = px.batch, H = c.hidden_size;
        BaseModelOutputWithPooling out;
        kernels::Scratch scratch;
        Tensor h = embed(px, interpolate_pos_encoding, scratch);
        const std::int64_t seq = h.dim(1);
        if (output_hidden_states) out.hidden_states.push_back(h);
        for (const auto& layer : encoder.layers) {
            layer.forward(h.ptr(), B, seq, scratch, pool);
            if (output_hidden_states) out.hidden_states.push_back(h);
        }
        out.pooler_output = Tensor({B, H});
        for (std::int64_t b = 0; b < B; ++b) {
            kernels::layer_norm(h.slice(b), 1, H, post_layernorm.weight, post_layernorm.bias, post_layernorm.eps,
                                out.pooler_output.slice(b));
        }
        out.last_hidden_state = std::move(h);
        return out;
    } catch (const std::bad_alloc&) {
        throw out_of_memory("AltCLIPVisionModel::forward", px);
    }

    /// pooler_output [batch, hidden] alone, as forward(px).pooler_output, without the last
    /// layer's work past each image's class token: that layer's keys and values are made for
    /// every token, its attention output, MLP and post_layernorm for the class token only
    /// (the last layer is 1/24 of ViT-L/14; this skips about 3/4 of it). Equal to forward's
    /// up to float rounding (the products run on fewer rows).
    Tensor pooler_output(const PixelView& px, bool interpolate_pos_encoding = false) const try {
        const auto& c = config_;
        check(px, interpolate_pos_encoding);
        kernels::ThreadPool* pool = pool_.get();
        const std::int64_t B = px.batch, H = c.hidden_size;
        kernels::Scratch scratch;
        Tensor h = embed(px, interpolate_pos_encoding, scratch);
        const std::int64_t seq = h.dim(1);
        Tensor pooled({B, H});
        const auto& layers = encoder.layers;
        if (layers.empty()) {
            for (std::int64_t b = 0; b < B; ++b) std::copy(h.slice(b), h.slice(b) + H, pooled.slice(b));
        } else {
            for (std::size_t i = 0; i + 1 < layers.size(); ++i) layers[i].forward(h.ptr(), B, seq, scratch, pool);
            layers.back().forward_first_rows(h.ptr(), B, seq, pooled.ptr(), scratch, pool);
        }
        for (std::int64_t b = 0; b < B; ++b) {
            kernels::layer_norm(pooled.slice(b), 1, H, post_layernorm.weight, post_layernorm.bias, post_layernorm.eps,
                                pooled.slice(b));
        }
        return pooled;
    } catch (const std::bad_alloc&) {
        throw out_of_memory("AltCLIPVisionModel::pooler_output", px);
    }

    AltCLIPVisionEmbeddings embeddings;
    detail::LayerNormParams pre_layrnorm;
    AltCLIPEncoder encoder;
    detail::LayerNormParams post_layernorm;

private:
    friend class detail::Tower<AltCLIPVisionModel, AltCLIPVisionConfig>;

    /// Throws InvalidArgument for pixel values this model cannot take.
    void check(const PixelView& px, bool interpolate_pos_encoding) const {
        const auto& c = config_;
        if (px.batch <= 0 || px.data == nullptr) throw InvalidArgument("AltCLIPVisionModel: empty batch of images");
        if (px.batch > kMaxBatchSize) {
            throw InvalidArgument("AltCLIPVisionModel: batch of " + std::to_string(px.batch) +
                                  " images exceeds the limit of " + std::to_string(kMaxBatchSize) +
                                  " (kMaxBatchSize); split it into several calls");
        }
        if (px.height > kMaxImageSide || px.width > kMaxImageSide) {
            throw InvalidArgument("AltCLIPVisionModel: pixel_values of " + std::to_string(px.height) + "x" +
                                  std::to_string(px.width) + " exceed the limit of " + std::to_string(kMaxImageSide) +
                                  " per side (kMaxImageSide)");
        }
        if (px.channels != c.num_channels) {
            throw InvalidArgument("AltCLIPVisionModel: pixel_values have " + std::to_string(px.channels) +
                                  " channels, the model takes " + std::to_string(c.num_channels));
        }
        if (!interpolate_pos_encoding && (px.height != c.image_size || px.width != c.image_size)) {
            throw InvalidArgument("AltCLIPVisionModel: input image size (" + std::to_string(px.height) + "*" +
                                  std::to_string(px.width) + ") doesn't match model (" +
                                  std::to_string(c.image_size) + "*" + std::to_string(c.image_size) +
                                  "); pass interpolate_pos_encoding=true to run at another size");
        }
        if (px.height < c.patch_size || px.width < c.patch_size) {
            throw InvalidArgument("AltCLIPVisionModel: image " + std::to_string(px.height) + "x" +
                                  std::to_string(px.width) + " is smaller than one patch");
        }
    }

    /// embeddings then pre_layrnorm: [batch, seq, hidden], the encoder's input.
    Tensor embed(const PixelView& px, bool interpolate_pos_encoding, kernels::Scratch& scratch) const {
        const auto& c = config_;
        kernels::ThreadPool* pool = pool_.get();
        const std::int64_t B = px.batch, H = c.hidden_size;
        const std::int64_t seq = (px.height / c.patch_size) * (px.width / c.patch_size) + 1;
        Tensor h({B, seq, H});
        const std::int64_t image_numel = px.channels * px.height * px.width;
        for (std::int64_t b = 0; b < B; ++b) {
            embeddings.forward(px.data + b * image_numel, px.height, px.width, interpolate_pos_encoding, h.slice(b),
                               scratch, pool);
        }
        kernels::layer_norm(h.ptr(), B * seq, H, pre_layrnorm.weight, pre_layrnorm.bias, pre_layrnorm.eps, h.ptr(), pool);
        return h;
    }

    static ResourceError out_of_memory(const char* where, const PixelView& px) {
        return detail::out_of_memory(where, "a batch of " + std::to_string(px.batch) + " images of " +
                                                std::to_string(px.height) + "x" + std::to_string(px.width));
    }

    void load(detail::WeightLoader& w, const std::string& prefix, const AltCLIPVisionConfig& c) {
        embeddings.load(w, prefix + "embeddings.", c);
        pre_layrnorm = w.layer_norm(prefix + "pre_layrnorm", c.hidden_size, c.layer_norm_eps);
        encoder.load(w, prefix + "encoder.", c);
        post_layernorm = w.layer_norm(prefix + "post_layernorm", c.hidden_size, c.layer_norm_eps);
    }
};

}  // namespace altclip
