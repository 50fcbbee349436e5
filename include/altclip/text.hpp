// The text tower, mirroring transformers' AltCLIPTextModel (models/altclip/modeling_altclip.py):
// XLM-RoBERTa (AltRobertaModel, post-LN layers, exact erf GELU, padding mask), then
// pre_LN and transformation on every token; pooler_output is token 0 (<s>).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "errors.hpp"
#include "format/model_file.hpp"
#include "inputs.hpp"  // TokenView, BatchEncoding
#include "kernels/buffer.hpp"
#include "kernels/gemm.hpp"
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

/// AltRobertaEmbeddings: word + position (RoBERTa numbering) + token type 0, then LayerNorm.
struct AltRobertaEmbeddings {
    kernels::WeightMatrix word_embeddings;         // [vocab_size, hidden] (bf16 rows widened as read)
    const float* position_embeddings = nullptr;    // [max_position_embeddings, hidden]
    const float* token_type_embeddings = nullptr;  // [type_vocab_size, hidden]
    detail::LayerNormParams LayerNorm;
    AltCLIPTextConfig config;

    void load(detail::WeightLoader& w, const std::string& prefix, const AltCLIPTextConfig& c) {
        config = c;
        word_embeddings = w.weight_matrix(prefix + "word_embeddings.weight", {c.vocab_size, c.hidden_size},
                                          /*products=*/false);  // rows looked up, never multiplied
        position_embeddings = w.get(prefix + "position_embeddings.weight", {c.max_position_embeddings, c.hidden_size});
        token_type_embeddings = w.get(prefix + "token_type_embeddings.weight", {c.type_vocab_size, c.hidden_size});
        LayerNorm = w.layer_norm(prefix + "LayerNorm", c.hidden_size, c.layer_norm_eps);
    }

    /// One sequence of ids [seq] -> out [seq, hidden].
    /// Positions as create_position_ids_from_input_ids: cumsum(id != pad) * (id != pad) + pad.
    void forward(const std::int64_t* ids, std::int64_t seq, float* out, kernels::ThreadPool* pool) const {
        const std::int64_t H = config.hidden_size, pad = config.pad_token_id;
        std::int64_t running = 0;
        for (std::int64_t t = 0; t < seq; ++t) {
            const std::int64_t id = ids[t];
            const std::int64_t pos = id != pad ? ++running + pad : pad;
            const float* pe = position_embeddings + pos * H;
            float* o = out + t * H;
            kernels::weight_row(word_embeddings, id, o);
            for (std::int64_t i = 0; i < H; ++i) o[i] = (o[i] + token_type_embeddings[i]) + pe[i];
        }
        kernels::layer_norm(out, seq, H, LayerNorm.weight, LayerNorm.bias, LayerNorm.eps, out, pool);
    }
};

/// AltRobertaLayer (post-LN): attention.self -> attention.output (dense, LayerNorm(+x)),
/// intermediate (dense, gelu) -> output (dense, LayerNorm(+a)).
struct AltRobertaLayer {
    struct {
        struct { detail::LinearParams query, key, value; } self;
        struct { detail::LinearParams dense; detail::LayerNormParams LayerNorm; } output;
    } attention;
    struct { detail::LinearParams dense; } intermediate;
    struct { detail::LinearParams dense; detail::LayerNormParams LayerNorm; } output;
    std::int64_t num_heads = 0;

    void load(detail::WeightLoader& w, const std::string& prefix, const AltCLIPTextConfig& c) {
        const auto H = c.hidden_size, I = c.intermediate_size;
        const std::string a = prefix + "attention.";
        attention.self.query = w.linear(a + "self.query", H, H, true);
        attention.self.key = w.linear(a + "self.key", H, H, true);
        attention.self.value = w.linear(a + "self.value", H, H, true);
        attention.output.dense = w.linear(a + "output.dense", H, H, true);
        attention.output.LayerNorm = w.layer_norm(a + "output.LayerNorm", H, c.layer_norm_eps);
        intermediate.dense = w.linear(prefix + "intermediate.dense", I, H, true);
        output.dense = w.linear(prefix + "output.dense", H, I, true);
        output.LayerNorm = w.layer_norm(prefix + "output.LayerNorm", H, c.layer_norm_eps);
        num_heads = c.num_attention_heads;
    }

    /// h: [batch * seq, hidden], updated in place; mask: [batch, seq] or nullptr. With
    /// `starts` ([batch + 1]): h holds the sequences packed back to back, sequence b in rows
    /// [starts[b], starts[b + 1]), without padding (seq and mask unused).
    void forward(float* h, std::int64_t batch, std::int64_t seq, const std::int64_t* mask, kernels::Scratch& scratch,
                 kernels::ThreadPool* pool, const std::int64_t* starts = nullptr) const {
        const std::int64_t rows = starts != nullptr ? starts[batch] : batch * seq, H = attention.self.query.out,
                           I = intermediate.dense.out;
        float* ctx = scratch.get(detail::kSlotCtx, rows * H);
        float* a = scratch.get(detail::kSlotA, rows * H);
        float* inter = scratch.get(detail::kSlotInter, rows * I);
        detail::self_attention(h, batch, seq, attention.self.query, attention.self.key, attention.self.value,
                               num_heads, mask, ctx, scratch, pool, starts);
        after_attention(ctx, h, rows, a, inter, h, scratch.workspace(), pool);
    }

    /// The layer's output at each sequence's first row only (<s>, all the pooler reads), into
    /// first [batch, hidden]; h, packed as forward's `starts` says, is read, not changed. A
    /// row's output depends on the other rows only through the keys and values, so the rest of
    /// the layer runs on `batch` rows.
    void forward_first_rows(const float* h, std::int64_t batch, const std::int64_t* starts, float* first,
                            kernels::Scratch& scratch, kernels::ThreadPool* pool) const {
        const std::int64_t rows = starts[batch], H = attention.self.query.out, I = intermediate.dense.out;
        float* ctx = scratch.get(detail::kSlotCtx, rows * H);
        float* a = scratch.get(detail::kSlotA, batch * H);
        float* inter = scratch.get(detail::kSlotInter, batch * I);
        detail::self_attention(h, batch, 0, attention.self.query, attention.self.key, attention.self.value,
                               num_heads, nullptr, ctx, scratch, pool, starts);
        for (std::int64_t b = 0; b < batch; ++b) {  // row starts[b] to row b: later rows than any written yet
            if (starts[b] != b) std::copy(ctx + starts[b] * H, ctx + (starts[b] + 1) * H, ctx + b * H);
            std::copy(h + starts[b] * H, h + (starts[b] + 1) * H, first + b * H);
        }
        after_attention(ctx, first, batch, a, inter, first, scratch.workspace(), pool);
    }

private:
    /// The layer past its self-attention, over `rows` rows: a = LayerNorm(attention.output.dense(ctx)
    /// + x), then y = LayerNorm(output.dense(gelu(intermediate.dense(a))) + a). y may be x.
    void after_attention(const float* ctx, const float* x, std::int64_t rows, float* a, float* inter, float* y,
                         kernels::Workspace& ws, kernels::ThreadPool* pool) const {
        const std::int64_t H = attention.self.query.out, I = intermediate.dense.out;
        const auto& ao = attention.output;
        // Each residual is the output buffer's start; linear_many adds the product to it (at
        // AVX2 and on AMX tiles as the tiles are written).
        std::copy(x, x + rows * H, a);
        const kernels::Product attended{&ao.dense.weight, ao.dense.bias, H, a, true};
        kernels::linear_many(ctx, rows, H, &attended, 1, pool, ws);
        kernels::layer_norm(a, rows, H, ao.LayerNorm.weight, ao.LayerNorm.bias, ao.LayerNorm.eps, a, pool);
        kernels::linear(a, rows, H, intermediate.dense.weight, intermediate.dense.bias, I, inter, pool, ws,
                        kernels::Activation::gelu_erf);
        std::copy(a, a + rows * H, y);  // (x, which y may be, is read no more)
        const kernels::Product out{&output.dense.weight, output.dense.bias, H, y, true};
        kernels::linear_many(inter, rows, I, &out, 1, pool, ws);
        kernels::layer_norm(y, rows, H, output.LayerNorm.weight, output.LayerNorm.bias, output.LayerNorm.eps, y, pool);
    }
};

/// AltRobertaEncoder: the stack of layers (stored keys say "layer.").
struct AltRobertaEncoder {
    std::vector<AltRobertaLayer> layer;

    void load(detail::WeightLoader& w, const std::string& prefix, const AltCLIPTextConfig& c) {
        layer.resize(static_cast<std::size_t>(c.num_hidden_layers));
        for (std::size_t i = 0; i < layer.size(); ++i) layer[i].load(w, prefix + "layer." + std::to_string(i) + ".", c);
    }
};

/// AltRobertaModel without its (unused) pooler.
struct AltRobertaModel {
    AltRobertaEmbeddings embeddings;
    AltRobertaEncoder encoder;

    void load(detail::WeightLoader& w, const std::string& prefix, const AltCLIPTextConfig& c) {
        embeddings.load(w, prefix + "embeddings.", c);
        encoder.load(w, prefix + "encoder.", c);
    }
};

/// AltCLIPTextModel: roberta -> pre_LN -> transformation on every token; pooler = token 0.
/// Immutable after construction; forward() is const and safe to call from several threads.
/// from_file(path, options), config() and isa(): detail::Tower (modules/setup.hpp).
class AltCLIPTextModel : public detail::Tower<AltCLIPTextModel, AltCLIPTextConfig> {
public:
    /// The text tower of a model file alone (tensors under "text_model.").
    explicit AltCLIPTextModel(std::shared_ptr<const ModelFile> file, const ModelOptions& options = {}) {
        load_alone(std::move(file), options);
    }
    /// Used by AltCLIPModel, whose set-up (loader, pool) spans the whole file.
    explicit AltCLIPTextModel(detail::ModelSetup& setup) { load_in(setup); }

    /// last_hidden_state [batch, seq, project_dim] (after pre_LN and transformation),
    /// pooler_output [batch, project_dim] (token 0). hidden_states: the embeddings output,
    /// then each RoBERTa layer's, [batch, seq, hidden].
    BaseModelOutputWithPooling forward(const TokenView& tokens, bool output_hidden_states = false) const try {
        const auto& c = config_;
        const std::int64_t B = tokens.batch, L = tokens.seq, H = c.hidden_size, P = c.project_dim;
        check(tokens);
        // Pads are recognised by pad_token_id (as the reference's position ids); the
        // attention mask hides them as keys.
        std::vector<std::int64_t> mask(static_cast<std::size_t>(B * L), 1);
        if (tokens.attention_mask != nullptr) mask.assign(tokens.attention_mask, tokens.attention_mask + B * L);

        kernels::ThreadPool* pool = pool_.get();
        BaseModelOutputWithPooling out;
        Tensor h({B, L, H});
        for (std::int64_t b = 0; b < B; ++b) roberta.embeddings.forward(tokens.input_ids + b * L, L, h.slice(b), pool);
        if (output_hidden_states) out.hidden_states.push_back(h);
        kernels::Scratch scratch;
        for (const auto& layer : roberta.encoder.layer) {
            layer.forward(h.ptr(), B, L, mask.data(), scratch, pool);
            if (output_hidden_states) out.hidden_states.push_back(h);
        }
        kernels::layer_norm(h.ptr(), B * L, H, pre_LN.weight, pre_LN.bias, pre_LN.eps, h.ptr(), pool);
        out.last_hidden_state = Tensor({B, L, P});
        kernels::linear(h.ptr(), B * L, H, transformation.weight, transformation.bias, P, out.last_hidden_state.ptr(),
                        pool, scratch.workspace());
        out.pooler_output = Tensor({B, P});
        for (std::int64_t b = 0; b < B; ++b) {
            const float* first = out.last_hidden_state.slice(b);
            std::copy(first, first + P, out.pooler_output.slice(b));
        }
        return out;
    } catch (const std::bad_alloc&) {
        throw detail::out_of_memory("AltCLIPTextModel::forward", "a batch of " + std::to_string(tokens.batch) + " texts of " +
                                     std::to_string(tokens.seq) + " tokens");
    }

    /// pooler_output [batch, project_dim] alone, as forward(tokens).pooler_output, without
    /// computing padding: when every sequence is right-padded (its mask some 1s, then only
    /// 0s), the real tokens of all sequences are packed back to back and each attends to its
    /// own only, so a batch of texts of different lengths costs what its real tokens cost.
    /// A padded position never changes a real one (its key is masked), so the result equals
    /// forward's up to float rounding. The last layer runs past the keys and values on each
    /// sequence's first token only (forward_first_rows). Other masks go through forward().
    Tensor pooler_output(const TokenView& tokens) const try {
        const auto& c = config_;
        const std::int64_t B = tokens.batch, L = tokens.seq, H = c.hidden_size, P = c.project_dim;
        check(tokens);
        std::vector<std::int64_t> starts(static_cast<std::size_t>(B + 1), 0);
        for (std::int64_t b = 0; b < B; ++b) {
            std::int64_t len = L;
            if (tokens.attention_mask != nullptr) {
                const std::int64_t* m = tokens.attention_mask + b * L;
                len = 0;
                while (len < L && m[len] == 1) ++len;
                for (std::int64_t t = len; t < L; ++t)
                    if (m[t] != 0) len = 0;  // not right padding
                if (len == 0) return forward(tokens).pooler_output;
            }
            starts[static_cast<std::size_t>(b + 1)] = starts[static_cast<std::size_t>(b)] + len;
        }
        kernels::ThreadPool* pool = pool_.get();
        const std::int64_t rows = starts[static_cast<std::size_t>(B)];
        kernels::Buffer h(rows * H);
        for (std::int64_t b = 0; b < B; ++b) {
            const std::int64_t s0 = starts[static_cast<std::size_t>(b)], s1 = starts[static_cast<std::size_t>(b + 1)];
            roberta.embeddings.forward(tokens.input_ids + b * L, s1 - s0, h.data() + s0 * H, pool);
        }
        kernels::Scratch scratch;
        // The last layer, pre_LN and transformation on each sequence's first token only.
        const auto& layers = roberta.encoder.layer;
        kernels::Buffer first(B * H);
        for (std::size_t i = 0; i + 1 < layers.size(); ++i) layers[i].forward(h.data(), B, 0, nullptr, scratch, pool, starts.data());
        if (layers.empty()) {
            for (std::int64_t b = 0; b < B; ++b) {
                const float* src = h.data() + starts[static_cast<std::size_t>(b)] * H;
                std::copy(src, src + H, first.data() + b * H);
            }
        } else {
            layers.back().forward_first_rows(h.data(), B, starts.data(), first.data(), scratch, pool);
        }
        kernels::layer_norm(first.data(), B, H, pre_LN.weight, pre_LN.bias, pre_LN.eps, first.data(), pool);
        Tensor pooled({B, P});
        kernels::linear(first.data(), B, H, transformation.weight, transformation.bias, P, pooled.ptr(), pool,
                        scratch.workspace());
        return pooled;
    } catch (const std::bad_alloc&) {
        throw detail::out_of_memory("AltCLIPTextModel::pooler_output", "a batch of " + std::to_string(tokens.batch) +
                                     " texts of " + std::to_string(tokens.seq) + " tokens");
    }

    AltRobertaModel roberta;
    detail::LayerNormParams pre_LN;
    detail::LinearParams transformation;

private:
    void check(const TokenView& tokens) const {
        const auto& c = config_;
        const std::int64_t B = tokens.batch, L = tokens.seq;
        if (B <= 0 || L <= 0 || tokens.input_ids == nullptr) throw InvalidArgument("AltCLIPTextModel: empty batch of texts");
        if (B > kMaxBatchSize) {
            throw InvalidArgument("AltCLIPTextModel: batch of " + std::to_string(B) + " texts exceeds the limit of " +
                                  std::to_string(kMaxBatchSize) + " (kMaxBatchSize); split it into several calls");
        }
        if (L > c.max_tokens()) {
            throw InvalidArgument("AltCLIPTextModel: sequence of " + std::to_string(L) + " tokens exceeds the model's " +
                                  std::to_string(c.max_tokens()) + " (max_position_embeddings - pad_token_id - 1); "
                                  "tokenize with truncation");
        }
        for (std::int64_t i = 0; i < B * L; ++i) {
            const std::int64_t id = tokens.input_ids[i];
            if (id < 0 || id >= c.vocab_size) {
                throw InvalidArgument("AltCLIPTextModel: token id " + std::to_string(id) + " at [" + std::to_string(i / L) +
                                      ", " + std::to_string(i % L) + "] is outside the vocabulary [0, " +
                                      std::to_string(c.vocab_size) + ")");
            }
        }
    }

    friend class detail::Tower<AltCLIPTextModel, AltCLIPTextConfig>;
    void load(detail::WeightLoader& w, const std::string& prefix, const AltCLIPTextConfig& c) {
        roberta.load(w, prefix + "roberta.", c);
        pre_LN = w.layer_norm(prefix + "pre_LN", c.hidden_size, c.layer_norm_eps);
        transformation = w.linear(prefix + "transformation", c.project_dim, c.hidden_size, true);
    }
};

}  // namespace altclip
