// Embedding lookup and its gradient. Shapes: table/dtable [V,H]; ids i32 with M elements (any shape);
// out/dout: M·H elements with last dim H (e.g. [B,S,H]). dtypes: CPU out and table both f32 or both f64;
// CUDA out/dout f32 or bf16, table f32 or bf16, dtable f32 (fp32 math).
// Out-of-range ids throw, naming the id, its position and V. CPU checks every id before writing.
// CUDA forward: the gather kernel raises a device-side flag that is read back after the launch
// (one 8-byte copy, synchronising the stream); rows with a bad id are left unwritten. CUDA backward
// validates all ids (same flag) before touching dtable, so a bad id leaves dtable unchanged.
#pragma once
#include "core/tensor.h"

namespace br {

// out[M,H] (=) or (+=) table[ids[m], :], ids i32 [M] (any shape with M elements), table [V,H]. Out-of-range id → error naming the id and V (CPU: check; CUDA: device-side flag read back, or a prior check — document which).
void embedding_forward(const Tensor& out, const Tensor& ids, const Tensor& table, bool accumulate);
// dtable[V,H] += scatter of dout rows by ids (deterministic on CUDA: e.g. sort ids, then one block per unique id — no atomics contention on hot rows like [PAD]/[CLS])
void embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& ids);

}  // namespace br
