// Zeroing the padding positions of a saved activation, so that Back Razor's top-k spends its kept
// values on real tokens only (docs/BACKRAZOR.md, "Padding"). Exact for the gradient: in a BERT
// classifier every padding position gets an exactly zero gradient (the loss reads [CLS], and
// masked keys get probability 0), so what its activations hold never reaches a weight gradient.
#pragma once
#include "core/tensor.h"

namespace br {

// x [B, ..., S, R] (at least [B, S, R]), token_mask i32 [B, S] (1 = token, 0 = padding), same
// device: x[b, ..., s, :] = 0 wherever token_mask[b, s] == 0. In place; any floating dtype (zero is
// all-zero bits in each).
void zero_padding_rows(const Tensor& x, const Tensor& token_mask);

}  // namespace br
