// Matrix products on row-major tensors.
// C = alpha * op(A) · op(B) + beta * C. 2-D: A [M,K] (or [K,M] if transA), B [K,N] (or [N,K] if
// transB), C [M,N]. Batched: leading dimensions on all three, identical (e.g. [G,M,K] or
// [B,N,S,D]); each batch entry is an independent product. beta == 0 overwrites C without reading it.
// CPU: f32, f64 (Eigen, threaded). CUDA: f32 (cuBLAS; TF32 only if set_cuda_tf32(true)),
// bf16 A/B with bf16 or f32 C (fp32 accumulate).
#pragma once
#include "core/tensor.h"

namespace br {

void matmul(const Tensor& C, const Tensor& A, bool transA, const Tensor& B, bool transB,
            float alpha = 1.0f, float beta = 0.0f);
// Lets f32 CUDA products use TF32 tensor cores (off by default: f32 means f32).
void set_cuda_tf32(bool on);
bool cuda_tf32();
// Lets f32 CPU products round A and B to bf16 and accumulate in f32 (oneDNN's matmul on
// AVX512-BF16 where the CPU has it; `--bf16 --device cpu`, as torch.set_float32_matmul_precision
// ("medium") does). Process-wide, off by default: f32 means f32. f64 products are never rounded.
void set_cpu_bf16_matmul(bool on);
bool cpu_bf16_matmul();
// Where oneDNN has no bf16 kernel for this CPU (no AVX512-BF16 or AMX), the same products run as
// sgemm on bf16-rounded f32 copies. On: behave so on any CPU (for tests).
void set_cpu_bf16_matmul_fallback(bool on);
// Whether oneDNN has a bf16 matmul kernel for this CPU (AVX512-BF16 or AMX). Without one the bf16
// mode still rounds as asked but runs slower than f32 (the rounding is an extra pass).
bool cpu_bf16_matmul_native();

}  // namespace br
