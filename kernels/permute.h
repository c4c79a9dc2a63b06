// Attention head layout changes; pure data movement, exact in every dtype.
#pragma once
#include "core/tensor.h"

namespace br {

// split_heads: out[B,N,S,D] = in[B,S,N*D] viewed as [B,S,N,D] and permuted (0,2,1,3). merge_heads is
// its inverse: out[B,S,N*D] from in[B,N,S,D]. Each is the other's backward. Any dtype (f32, f64,
// bf16, f16). out must not alias in.
void split_heads(const Tensor& out, const Tensor& in, int64_t heads);
void merge_heads(const Tensor& out, const Tensor& in);

}  // namespace br
