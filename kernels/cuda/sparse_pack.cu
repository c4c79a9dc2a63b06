// Back Razor pack/unpack on CUDA; the same selection rule and layout as kernels/cpu/sparse_pack.cpp,
// bit for bit (kernels/sparse_pack.h).
//
// pack_topk, per sample b of n elements, keep k:
//   1. radix select over magnitude keys (|x| bits: 32 for f32, 16 for f16/bf16), 8 bits per pass:
//      histogram the keys matching the prefix found so far, then one block per sample finds the
//      digit holding the rank-th largest key. The result is the threshold t (the k-th largest
//      key), count_gt = #{key > t} and ties = k - count_gt (keep the first `ties` keys == t).
//   2. per chunk of kChunk elements: count keys > t and == t.
//   3. per sample: exclusive scans over chunks give the ties before each chunk and the kept values
//      before each chunk (kept in a chunk = gt + min(eq, max(0, ties - eq_before))).
//   4. per chunk: warps ballot keep = key > t || (key == t && tie rank < ties) into mask words and
//      compact the kept values by popc prefixes, in row-major order.
// unpack: popc per chunk of mask words; a check that every row holds exactly k bits and no padding
// bits (a bad mask throws, as on the CPU); a device-wide exclusive scan gives each chunk's offset
// into the concatenated values; then each warp expands one mask word.
#include <algorithm>
#include <vector>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_scan.cuh>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kChunk = 4096;              // elements per block in steps 2-4 and unpack
constexpr int64_t kChunkWords = kChunk / 32;  // mask words per chunk
static_assert(kChunk % kThreads == 0 && kThreads % 32 == 0, "chunks hold whole tiles and words");

// Magnitude keys as on the CPU: the bits with the sign cleared (NaN above +inf), kKeyBits wide.
__device__ __forceinline__ uint32_t magnitude_key(float v) {
  return __float_as_uint(v) & 0x7fffffffu;
}
__device__ __forceinline__ uint32_t magnitude_key(f16 v) { return __half_as_ushort(v) & 0x7fffu; }
__device__ __forceinline__ uint32_t magnitude_key(bf16 v) {
  return __bfloat16_as_ushort(v) & 0x7fffu;
}
template <typename T>
constexpr int kKeyBits = int(sizeof(T)) * 8;

// Radix-select state of one sample: keys matching `prefix` under `pmask` are the candidates, and
// the threshold is the rank-th largest of them; count_gt counts the keys already known to be larger.
struct SelectState {
  uint32_t prefix, pmask, rank, count_gt;
};

__global__ void init_state_kernel(SelectState* st, int B, uint32_t k) {
  int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b < B) st[b] = SelectState{0u, 0u, k, 0u};
}

// hist[b][d] += #{i : key_i matches the prefix, digit (key_i >> shift) & 255 == d}.
// grid (blocks per sample, B). Lanes of a warp holding the same digit add once (__match_any_sync),
// so zero-heavy rows (padded attention probabilities) do not serialise on one shared counter; the
// loop runs warp-uniformly so the full-mask match is safe.
template <typename In>
__global__ void histogram_kernel(const In* x, int64_t n, const SelectState* st, uint32_t* hist,
                                 int shift) {
  __shared__ uint32_t h[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) h[i] = 0;
  __syncthreads();
  const int b = blockIdx.y;
  const int lane = threadIdx.x & 31;
  const SelectState s = st[b];
  const In* xb = x + int64_t(b) * n;
  for (int64_t base = int64_t(blockIdx.x) * blockDim.x + (threadIdx.x & ~31u); base < n;
       base += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = base + lane;
    uint32_t bin = 256u;  // none: past the end or not matching the prefix
    if (i < n) {
      const uint32_t key = magnitude_key(xb[i]);
      if ((key & s.pmask) == s.prefix) bin = (key >> shift) & 255u;
    }
    const uint32_t peers = __match_any_sync(kFullMask, bin);
    if (bin < 256u && lane == __ffs(peers) - 1) atomicAdd(&h[bin], uint32_t(__popc(peers)));
  }
  __syncthreads();
  for (int i = threadIdx.x; i < 256; i += blockDim.x)
    if (h[i]) atomicAdd(&hist[int64_t(b) * 256 + i], h[i]);
}

// One block of 256 per sample: thread j looks at digit d = 255 - j; the exclusive sum over j is the
// count of candidates with a larger digit. The one digit whose interval holds `rank` extends the
// prefix. Clears the histogram for the next pass.
__global__ void select_digit_kernel(SelectState* st, uint32_t* hist, int shift) {
  using Scan = cub::BlockScan<uint32_t, 256>;
  __shared__ typename Scan::TempStorage tmp;
  const int b = blockIdx.x;
  const uint32_t d = 255u - threadIdx.x;
  uint32_t* hb = hist + int64_t(b) * 256;
  const SelectState s = st[b];
  const uint32_t count = hb[d];
  uint32_t above = 0;
  Scan(tmp).ExclusiveSum(count, above);
  __syncthreads();
  if (above < s.rank && s.rank <= above + count)
    st[b] = SelectState{s.prefix | (d << shift), s.pmask | (255u << shift), s.rank - above,
                        s.count_gt + above};
  hb[d] = 0;
}

// Sum of v over the block, added into *out (shared).
__device__ __forceinline__ void block_add(uint32_t v, uint32_t* out) {
  v = __reduce_add_sync(kFullMask, v);
  if ((threadIdx.x & 31) == 0 && v) atomicAdd(out, v);
}

// Per chunk: counts of keys > t and == t. grid (chunks, B).
template <typename In>
__global__ void count_kernel(const In* x, int64_t n, const SelectState* st, uint32_t* gt_count,
                             uint32_t* eq_count, int64_t chunks) {
  __shared__ uint32_t s_gt, s_eq;
  if (threadIdx.x == 0) s_gt = s_eq = 0;
  __syncthreads();
  const int b = blockIdx.y;
  const uint32_t t = st[b].prefix;
  const In* xb = x + int64_t(b) * n;
  const int64_t begin = int64_t(blockIdx.x) * kChunk;
  const int64_t end = min(n, begin + kChunk);
  uint32_t gt = 0, eq = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    uint32_t key = magnitude_key(xb[i]);
    gt += key > t;
    eq += key == t;
  }
  block_add(gt, &s_gt);
  block_add(eq, &s_eq);
  __syncthreads();
  if (threadIdx.x == 0) {
    gt_count[int64_t(b) * chunks + blockIdx.x] = s_gt;
    eq_count[int64_t(b) * chunks + blockIdx.x] = s_eq;
  }
}

// One block per sample: eq_before[c] = ties in chunks before c; kept_before[c] = kept values in
// chunks before c, where a chunk keeps its gt plus the ties still allowed.
__global__ void chunk_scan_kernel(const uint32_t* gt_count, const uint32_t* eq_count,
                                  const SelectState* st, uint32_t* eq_before,
                                  uint32_t* kept_before, int64_t chunks) {
  using Scan = cub::BlockScan<uint32_t, kThreads>;
  __shared__ typename Scan::TempStorage tmp;
  const int b = blockIdx.x;
  const uint32_t ties = st[b].rank;
  const int64_t row = int64_t(b) * chunks;
  uint32_t eq_run = 0, kept_run = 0;
  for (int64_t base = 0; base < chunks; base += kThreads) {
    const int64_t c = base + threadIdx.x;
    const uint32_t eq = c < chunks ? eq_count[row + c] : 0u;
    const uint32_t gt = c < chunks ? gt_count[row + c] : 0u;
    uint32_t eq_excl = 0, eq_total = 0;
    Scan(tmp).ExclusiveSum(eq, eq_excl, eq_total);
    __syncthreads();
    const uint32_t eb = eq_run + eq_excl;
    const uint32_t kept = gt + (eb >= ties ? 0u : min(eq, ties - eb));
    uint32_t kept_excl = 0, kept_total = 0;
    Scan(tmp).ExclusiveSum(kept, kept_excl, kept_total);
    __syncthreads();
    if (c < chunks) {
      eq_before[row + c] = eb;
      kept_before[row + c] = kept_run + kept_excl;
    }
    eq_run += eq_total;
    kept_run += kept_total;
  }
}

// Sums of per-warp counts in shared memory: before this warp, and over the whole block.
__device__ __forceinline__ void warp_prefix(const uint32_t* s, int warp, uint32_t& before,
                                            uint32_t& total) {
  before = 0;
  total = 0;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) {
    uint32_t v = s[w];
    before += w < warp ? v : 0u;
    total += v;
  }
}

// Per chunk, in tiles of 256 elements (8 warps x one 32-bit mask word): mask words and compacted
// values. Chunks start at multiples of kChunk, so every warp's 32 elements are one whole word.
template <typename In, typename Out>
__global__ void write_kernel(const In* x, int64_t n, int64_t k, const SelectState* st,
                             const uint32_t* eq_before, const uint32_t* kept_before,
                             uint32_t* mask, int64_t words, Out* values, int64_t chunks) {
  __shared__ uint32_t s_eq[kWarps], s_keep[kWarps];
  const int b = blockIdx.y;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const uint32_t lt = (1u << lane) - 1u;
  const uint32_t t = st[b].prefix, ties = st[b].rank;
  uint32_t eq_base = eq_before[int64_t(b) * chunks + blockIdx.x];
  uint32_t kept_base = kept_before[int64_t(b) * chunks + blockIdx.x];
  const In* xb = x + int64_t(b) * n;
  uint32_t* mb = mask + int64_t(b) * words;
  Out* vb = values + int64_t(b) * k;
  const int64_t begin = int64_t(blockIdx.x) * kChunk;
  const int64_t end = min(n, begin + kChunk);
  for (int64_t tile = begin; tile < end; tile += kThreads) {
    const int64_t i = tile + threadIdx.x;
    const bool valid = i < end;
    const In v = valid ? xb[i] : In{};
    const uint32_t key = valid ? magnitude_key(v) : 0u;
    const bool gt = valid && key > t, eq = valid && key == t;
    const uint32_t eq_ballot = __ballot_sync(kFullMask, eq);
    if (lane == 0) s_eq[warp] = __popc(eq_ballot);
    __syncthreads();
    uint32_t eq_warp = 0, eq_tile = 0;
    warp_prefix(s_eq, warp, eq_warp, eq_tile);
    const bool keep = gt || (eq && eq_base + eq_warp + __popc(eq_ballot & lt) < ties);
    const uint32_t keep_ballot = __ballot_sync(kFullMask, keep);
    if (lane == 0) {
      s_keep[warp] = __popc(keep_ballot);
      if (tile + warp * 32 < end) mb[(tile >> 5) + warp] = keep_ballot;
    }
    __syncthreads();
    uint32_t keep_warp = 0, keep_tile = 0;
    warp_prefix(s_keep, warp, keep_warp, keep_tile);
    if (keep) vb[kept_base + keep_warp + __popc(keep_ballot & lt)] = convert<Out>(v);
    eq_base += eq_tile;
    kept_base += keep_tile;
    __syncthreads();
  }
}

// Set bits per chunk of mask words. grid (chunks, B), block kChunkWords.
__global__ void popc_kernel(const uint32_t* mask, int64_t words, int64_t chunks,
                            unsigned long long* counts) {
  __shared__ uint32_t s;
  if (threadIdx.x == 0) s = 0;
  __syncthreads();
  const int b = blockIdx.y;
  const int64_t w = int64_t(blockIdx.x) * kChunkWords + threadIdx.x;
  block_add(w < words ? uint32_t(__popc(mask[int64_t(b) * words + w])) : 0u, &s);
  __syncthreads();
  if (threadIdx.x == 0) counts[int64_t(b) * chunks + blockIdx.x] = s;
}

// One block per sample: the row's set bits (summed over its chunks' counts) must be k and its
// padding bits clear, or unpack would read another sample's values or past the end. The first bad
// row is reported in err = {flag, row, bits, padding set}.
__global__ void check_mask_kernel(const uint32_t* mask, int64_t words, int64_t n, int64_t k,
                                  const unsigned long long* counts, int64_t chunks,
                                  long long* err) {
  using Reduce = cub::BlockReduce<unsigned long long, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  const int b = blockIdx.x;
  unsigned long long bits = 0;
  for (int64_t c = threadIdx.x; c < chunks; c += kThreads) bits += counts[int64_t(b) * chunks + c];
  bits = Reduce(tmp).Sum(bits);
  if (threadIdx.x == 0) {
    const uint32_t tail = n % 32 == 0 ? ~0u : (1u << (n % 32)) - 1u;
    const bool padding = (mask[int64_t(b) * words + words - 1] & ~tail) != 0;
    if ((bits != (unsigned long long)k || padding) &&
        atomicCAS(reinterpret_cast<unsigned long long*>(err), 0ull, 1ull) == 0ull) {
      err[1] = b;
      err[2] = (long long)bits;
      err[3] = padding;
    }
  }
}

// Per chunk: each warp expands one mask word per tile; the value index is the chunk's offset
// (exclusive scan of counts over all chunks of all samples) plus popc prefixes.
template <typename V, typename Out>
__global__ void unpack_kernel(const uint32_t* mask, int64_t words, const V* values,
                              const unsigned long long* offsets, int64_t n, int64_t chunks,
                              Out* out) {
  __shared__ uint32_t s_cnt[kWarps];
  const int b = blockIdx.y;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const uint32_t lt = (1u << lane) - 1u;
  const uint32_t* mb = mask + int64_t(b) * words;
  Out* ob = out + int64_t(b) * n;
  unsigned long long base = offsets[int64_t(b) * chunks + blockIdx.x];
  const int64_t begin = int64_t(blockIdx.x) * kChunk;
  const int64_t end = min(n, begin + kChunk);
  const Out zero = from_f<Out>(0.0f);
  for (int64_t tile = begin; tile < end; tile += kThreads) {
    const int64_t w = (tile >> 5) + warp;
    const uint32_t word = w < words ? mb[w] : 0u;
    if (lane == 0) s_cnt[warp] = __popc(word);
    __syncthreads();
    uint32_t before = 0, total = 0;
    warp_prefix(s_cnt, warp, before, total);
    const int64_t i = tile + threadIdx.x;
    if (i < end)
      ob[i] = (word >> lane) & 1u ? convert<Out>(values[base + before + __popc(word & lt)]) : zero;
    base += total;
    __syncthreads();
  }
}

uint32_t* u32(const Tensor& t) { return static_cast<uint32_t*>(t.raw()); }

Tensor workspace_u32(int64_t count) {
  return Tensor::empty({count}, DType::i32, Device::cuda, MemCategory::workspace);
}

}  // namespace

void pack_topk(const SparsePack& p, const Tensor& x) {
  const int64_t B = p.batch, n = p.n, k = p.k, words = sparse_mask_row_bytes(n) / 4;
  BR_CHECK(B <= 65535, "pack_topk: CUDA handles at most 65535 samples, x is {}", x.str());
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  Tensor state = workspace_u32(4 * B);
  Tensor hist = workspace_u32(256 * B);
  Tensor gt_count = workspace_u32(B * chunks), eq_count = workspace_u32(B * chunks);
  Tensor eq_before = workspace_u32(B * chunks), kept_before = workspace_u32(B * chunks);
  auto* st = static_cast<SelectState*>(state.raw());
  cudaStream_t s = stream();
  BR_CUDA_CHECK(cudaMemsetAsync(hist.raw(), 0, hist.nbytes(), s));
  init_state_kernel<<<grid_1d(B), 256, 0, s>>>(st, int(B), uint32_t(k));
  BR_KERNEL_CHECK("pack_topk init");
  const unsigned hist_blocks =
      unsigned(std::clamp<int64_t>((n + kThreads * 16 - 1) / (kThreads * 16), 1, 1024));
  const dim3 chunk_grid{unsigned(chunks), unsigned(B)};
  dispatch_f32_f16_bf16("pack_topk (inputs)", x, [&](auto in) {
    using In = decltype(in);
    const auto* xs = static_cast<const In*>(x.raw());
    for (int shift = kKeyBits<In> - 8; shift >= 0; shift -= 8) {
      histogram_kernel<In><<<dim3(hist_blocks, unsigned(B)), kThreads, 0, s>>>(xs, n, st, u32(hist),
                                                                              shift);
      BR_KERNEL_CHECK("pack_topk histogram");
      select_digit_kernel<<<unsigned(B), 256, 0, s>>>(st, u32(hist), shift);
      BR_KERNEL_CHECK("pack_topk select");
    }
    count_kernel<In><<<chunk_grid, kThreads, 0, s>>>(xs, n, st, u32(gt_count), u32(eq_count), chunks);
    BR_KERNEL_CHECK("pack_topk count");
    chunk_scan_kernel<<<unsigned(B), kThreads, 0, s>>>(u32(gt_count), u32(eq_count), st,
                                                       u32(eq_before), u32(kept_before), chunks);
    BR_KERNEL_CHECK("pack_topk chunk scan");
    dispatch_f32_f16_bf16("pack_topk (values)", p.values, [&](auto out) {
      using Out = decltype(out);
      write_kernel<In, Out><<<chunk_grid, kThreads, 0, s>>>(
          xs, n, k, st, u32(eq_before), u32(kept_before), u32(p.mask), words,
          static_cast<Out*>(p.values.raw()), chunks);
      BR_KERNEL_CHECK("pack_topk write");
    });
  });
}

void unpack(const Tensor& out, const SparsePack& p) {
  const int64_t B = p.batch, n = p.n, words = sparse_mask_row_bytes(n) / 4;
  BR_CHECK(B <= 65535, "unpack: CUDA handles at most 65535 samples, pack is {}", shape_str(p.shape));
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  const int num = int(B * chunks);
  Tensor counts = Tensor::empty({B * chunks}, DType::i64, Device::cuda, MemCategory::workspace);
  Tensor offsets = Tensor::empty({B * chunks}, DType::i64, Device::cuda, MemCategory::workspace);
  auto* cnt = static_cast<unsigned long long*>(counts.raw());
  auto* off = static_cast<unsigned long long*>(offsets.raw());
  cudaStream_t s = stream();
  const dim3 chunk_grid{unsigned(chunks), unsigned(B)};
  popc_kernel<<<chunk_grid, unsigned(kChunkWords), 0, s>>>(u32(p.mask), words, chunks, cnt);
  BR_KERNEL_CHECK("unpack popc");
  // Checked before anything is written, as on the CPU; the read-back costs one sync per unpack.
  Tensor err = Tensor::zeros({4}, DType::i64, Device::cuda, MemCategory::workspace);
  check_mask_kernel<<<unsigned(B), kThreads, 0, s>>>(u32(p.mask), words, n, p.k, cnt, chunks,
                                                     static_cast<long long*>(err.raw()));
  BR_KERNEL_CHECK("unpack check mask");
  const std::vector<int64_t> e = err.to_vector<int64_t>();
  BR_CHECK(e[0] == 0,
           "unpack: mask row {} of a pack of shape {} has {} bits set (padding {}), expected k={}",
           e[1], shape_str(p.shape), e[2], e[3] ? "set" : "clear", p.k);
  size_t temp_bytes = 0;
  BR_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, temp_bytes, cnt, off, num, s));
  Tensor temp = Tensor::empty({int64_t(std::max<size_t>(temp_bytes, 1))}, DType::u8, Device::cuda,
                              MemCategory::workspace);
  BR_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(temp.raw(), temp_bytes, cnt, off, num, s));
  dispatch_f32_f16_bf16("unpack (values)", p.values, [&](auto v) {
    using V = decltype(v);
    dispatch_f32_f16_bf16("unpack (outputs)", out, [&](auto o) {
      using Out = decltype(o);
      unpack_kernel<V, Out><<<chunk_grid, kThreads, 0, s>>>(
          u32(p.mask), words, static_cast<const V*>(p.values.raw()), off, n, chunks,
          static_cast<Out*>(out.raw()));
      BR_KERNEL_CHECK("unpack");
    });
  });
}

}  // namespace br::cuda
