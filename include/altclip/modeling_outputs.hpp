// Output structs, as transformers' modeling_outputs.
#pragma once

#include <vector>

#include "tensor.hpp"

namespace altclip {

/// Output of a tower, as transformers' BaseModelOutputWithPooling.
struct BaseModelOutputWithPooling {
    Tensor last_hidden_state;           // [batch, seq, hidden]
    Tensor pooler_output;               // [batch, dim]
    std::vector<Tensor> hidden_states;  // with output_hidden_states: the encoder input, then each layer's output
};

}  // namespace altclip
