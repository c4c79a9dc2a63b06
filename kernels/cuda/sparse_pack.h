#pragma once
#include "kernels/sparse_pack.h"

namespace br::cuda {
// p.mask and p.values are allocated by the caller; shapes and dtypes already checked.
void pack_topk(const SparsePack& p, const Tensor& x);
void unpack(const Tensor& out, const SparsePack& p);
}  // namespace br::cuda
