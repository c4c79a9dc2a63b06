// Pointwise activations other than GELU (kernels/gelu.h). Any shape; out may alias inp.
#pragma once
#include "core/tensor.h"

namespace br {

// out = tanh(inp);  dinp = dout ⊙ (1 − out²)   (backward uses the forward OUTPUT; dinp may alias dout)
void tanh_forward(const Tensor& out, const Tensor& inp);
void tanh_backward(const Tensor& dinp, const Tensor& dout, const Tensor& out);

}  // namespace br
