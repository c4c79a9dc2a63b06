// Inverted dropout whose mask is a pure function of (key, example id, element index within the row),
// so CPU and CUDA masks are bit-identical and backward regenerates the mask instead of saving it.
// Shapes: out, inp, dinp, dout identical, dim 0 = rows; example_ids i32 [dim0]. p in [0, 1]
// (p == 1 drops everything). dtypes: CPU f32/f64, CUDA f32/bf16. out may alias inp.
#pragma once
#include "core/philox.h"
#include "core/tensor.h"

namespace br {

// Inverted dropout with masks from the Philox stream (core/philox.h): for row r (index along dim 0) and element e within that row,
// keep = dropout_uniform(key, example_ids[r], e) >= p; out = keep ? inp/(1−p) : 0. example_ids: i32 [dim0] on the tensor's device.
// p == 0 copies. backward regenerates the same mask: dinp = keep ? dout/(1−p) : 0.
void dropout_forward(const Tensor& out, const Tensor& inp, float p, const DropoutKey& key,
                     const Tensor& example_ids);
void dropout_backward(const Tensor& dinp, const Tensor& dout, float p, const DropoutKey& key,
                      const Tensor& example_ids);

}  // namespace br
