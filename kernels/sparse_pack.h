// Back Razor sparse storage of a saved activation (DESIGN.md "Back Razor, precisely"; spec §1.1-1.2,
// §7). Per sample (dim 0 = B samples of n elements each) keep exactly k = backrazor_keep_count(n,
// prune_ratio) elements with the largest |x|, ties broken by lower index first, so exactly k are kept
// even for all-equal or all-zero rows (the reference keeps every tie; we do not).
//
// Magnitude order: |x| compared exactly in the input dtype (sign bit cleared, then the bit pattern as
// an unsigned integer, which orders non-negative IEEE values). +0 and -0 tie. NaN counts as larger
// than every number (and than +inf), so NaNs are always kept.
//
// Layout. mask: u8 [B, 4*W] with W = ceil(n/32): row b holds W little-endian 32-bit words; element j
// of sample b is bit (j % 32) of word j / 32, i.e. byte j / 8, bit j % 8, LSB-first (the reference
// packs MSB-first over the whole tensor; we pad each sample to whole words so a warp ballot writes a
// word). Padding bits are 0. values: value_dtype [B*k], the kept values of sample 0 in row-major
// order, then sample 1, ... Value dtypes: f32, f16, bf16 (rounded to nearest even), and f64 when x
// is f64 (for gradient tests). CPU: every combination; CUDA: x and values in f32, f16, bf16.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace br {

struct SparsePack {
  Shape shape;                // shape of the packed tensor
  DType dtype = DType::f32;   // dtype of the packed tensor (what unpack returns)
  int64_t batch = 0, n = 0, k = 0;  // B samples of n elements, k kept per sample
  Tensor mask;                // u8 [B, 4 * ceil(n/32)]
  Tensor values;              // value dtype [B * k]
  int64_t bytes() const;      // mask + values
};

// Back Razor keep count per sample of n elements (DESIGN.md): the count the reference keeps when
// magnitudes are distinct, k = n - floor(n * prune_ratio) + 1, clipped to [1, n].
int64_t backrazor_keep_count(int64_t n, double prune_ratio);
// Bytes of one mask row: n bits padded to whole 32-bit words.
inline int64_t sparse_mask_row_bytes(int64_t n) { return (n + 31) / 32 * 4; }
// What pack_topk will hold for B samples of n elements, known before the step runs.
int64_t sparse_pack_bytes(int64_t batch, int64_t n, double prune_ratio, DType value_dtype);

// Top-k by magnitude per sample: bitmask + kept values (layout above), allocated under `category`.
SparsePack pack_topk(const Tensor& x, double prune_ratio, DType value_dtype,
                     MemCategory category = MemCategory::saved_activations);
// The same selection into a pack the caller allocated: out.mask/out.values shaped as pack_topk's
// for x (out.shape == x's shape, out.k == backrazor_keep_count(n, ratio)); they may be row views of
// a larger pack (the tape fills one sample chunk at a time). The pack is per sample, so packing
// samples in chunks gives the bytes pack_topk of the whole tensor gives.
void pack_topk_into(const SparsePack& out, const Tensor& x);
// Dense reconstruction into out (shape/dtype of the original): kept positions get their (rounded)
// values, the rest exactly 0.
void unpack(const Tensor& out, const SparsePack& p);
Tensor unpack(const SparsePack& p, MemCategory category = MemCategory::activations);

}  // namespace br
