// GELU, erf form (BERT). Shapes: any, identical for all arguments. dtypes: CPU f32/f64, CUDA f32/bf16
// (fp32 math). out may alias inp, and dinp dout.
#pragma once
#include "core/tensor.h"

namespace br {

// GELU, erf form (BERT): out = 0.5·x·(1 + erf(x/√2));  dinp = dout ⊙ (Φ(x) + x·φ(x))
void gelu_forward(const Tensor& out, const Tensor& inp);
void gelu_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp);

}  // namespace br
