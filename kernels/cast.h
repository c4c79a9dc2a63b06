// cast: out = in converted elementwise between any two floating dtypes (f32, f64, f16, bf16),
// rounding to nearest even; also integer -> floating. Shapes must match exactly.
#pragma once
#include "core/tensor.h"

namespace br {

void cast(const Tensor& out, const Tensor& in);
Tensor cast(const Tensor& in, DType dtype, MemCategory category = MemCategory::activations);

// fill: every element of a floating tensor set to `value`.
void fill(const Tensor& out, double value);

}  // namespace br
