// Training data order, bit-identical to PyTorch: torch.randperm on CPU with a seeded
// torch.Generator (MT19937), RandomSampler (one generator reused across epochs) and
// DistributedSampler (seed + epoch, padded, strided). Spec §2.6 and §7.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace br {

// torch.Generator().manual_seed(seed): MT19937 seeded with the low 32 bits of `seed`.
// random() is one 32-bit draw; random64() is two, the first giving the high half.
class TorchGenerator {
 public:
  explicit TorchGenerator(uint64_t seed) : engine_(uint32_t(seed & 0xffffffffu)) {}
  uint32_t random() { return uint32_t(engine_()); }
  uint64_t random64() {
    uint64_t hi = random();
    uint64_t lo = random();
    return (hi << 32) | lo;
  }

 private:
  std::mt19937 engine_;
};

// torch.randperm(n, generator=g) on CPU (ATen randperm_cpu). For n < 2^32/20:
// r = 0..n-1; for i in 0..n-2: z = random() % (n-i), swap(r[i], r[i+z]). Larger n: the
// inside-out Fisher-Yates with z = random64() % (i+1).
std::vector<int64_t> torch_randperm(int64_t n, TorchGenerator& gen);
std::vector<int64_t> torch_randperm(int64_t n, uint64_t seed);

// RandomSampler(range(n), generator=torch.Generator().manual_seed(seed)), iterated to the end
// once per epoch. torch (>= 1.11) draws a permutation for the epoch and then one more that it
// slices to num_samples % n = 0 elements, so epoch e is permutation 2e of the generator's stream.
// HF 4.11 seeds that generator from torch's global RNG, which no program outside PyTorch can
// replay; we seed it with args.sampler_seed().
std::vector<int64_t> random_sampler_order(int64_t n, uint64_t seed, int64_t epoch);

// DistributedSampler(num_replicas=world_size, rank, shuffle=True, seed, drop_last) after
// set_epoch(epoch): perm = randperm(n) seeded seed + epoch; without drop_last, append
// perm[:total - n] (repeating as needed) so total = ceil(n / W) * W; with drop_last, cut to
// floor(n / W) * W; rank r takes perm[r::W].
std::vector<int64_t> distributed_sampler_order(int64_t n, uint64_t seed, int64_t epoch,
                                               int64_t world_size, int64_t rank,
                                               bool drop_last = false);

// The order the Trainer feeds process `rank` in epoch `epoch`: RandomSampler when
// world_size == 1, DistributedSampler otherwise (spec §2.6).
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch, int64_t world_size = 1,
                                 int64_t rank = 0);

}  // namespace br
