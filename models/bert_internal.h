// Helpers shared by the BERT forward and backward; not part of the public model API.
#pragma once
#include <string>

#include "core/tensor.h"

namespace br {

// Dropout site ids (DropoutKey::site): three per encoder layer, plus embeddings and classifier.
enum : uint32_t { kDropAttention = 0, kDropAttnOut = 1, kDropFfnOut = 2 };
constexpr uint32_t kDropEmbeddings = 0xfffff000u;
constexpr uint32_t kDropClassifier = 0xfffff001u;
inline uint32_t dropout_site(int layer, uint32_t which) { return uint32_t(layer) * 4u + which; }

// LayerNorm statistics are saved dense, beside the policy-controlled sites.
inline std::string stats_key(int layer, const char* what) {
  return layer < 0 ? std::string(what) : "layer" + std::to_string(layer) + "." + what;
}

// mean / rstd buffers: f64 for an f64 model, f32 otherwise.
Tensor stats_tensor(int64_t rows, DType model_dtype, Device device);
// i32 [B,S] holding 0..S-1 in every row.
Tensor position_ids(int64_t B, int64_t S, Device device);
// out[b,:] = h[b,0,:] for h [B,S,H]; and its adjoint: dh[b,0,:] = dout[b,:], other rows zero.
void gather_first_token(const Tensor& out, const Tensor& h);
void scatter_first_token(const Tensor& dh, const Tensor& dout);

}  // namespace br
