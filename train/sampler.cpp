#include "train/sampler.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <utility>

#include "core/error.h"

namespace br {

std::vector<int64_t> torch_randperm(int64_t n, TorchGenerator& gen) {
  BR_CHECK(n >= 0, "torch_randperm: n must be >= 0, got {}", n);
  std::vector<int64_t> r(static_cast<size_t>(n));
  if (n < int64_t(std::numeric_limits<uint32_t>::max() / 20)) {
    std::iota(r.begin(), r.end(), int64_t(0));
    for (int64_t i = 0; i < n - 1; ++i) {
      int64_t z = int64_t(gen.random() % uint64_t(n - i));
      std::swap(r[size_t(i)], r[size_t(i + z)]);
    }
    return r;
  }
  for (int64_t i = 0; i < n; ++i) {
    int64_t z = int64_t(gen.random64() % uint64_t(i + 1));
    r[size_t(i)] = r[size_t(z)];
    r[size_t(z)] = i;
  }
  return r;
}

std::vector<int64_t> torch_randperm(int64_t n, uint64_t seed) {
  TorchGenerator gen(seed);
  return torch_randperm(n, gen);
}

std::vector<int64_t> random_sampler_order(int64_t n, uint64_t seed, int64_t epoch) {
  BR_CHECK(epoch >= 0, "random_sampler_order: epoch must be >= 0, got {}", epoch);
  TorchGenerator gen(seed);
  for (int64_t e = 0; e < 2 * epoch; ++e) torch_randperm(n, gen);
  return torch_randperm(n, gen);
}

std::vector<int64_t> distributed_sampler_order(int64_t n, uint64_t seed, int64_t epoch,
                                               int64_t world_size, int64_t rank, bool drop_last) {
  BR_CHECK(world_size >= 1 && rank >= 0 && rank < world_size,
           "distributed_sampler_order: rank {} out of range for world_size {}", rank, world_size);
  BR_CHECK(n > 0, "distributed_sampler_order: the dataset is empty");
  BR_CHECK(epoch >= 0, "distributed_sampler_order: epoch must be >= 0, got {}", epoch);
  std::vector<int64_t> perm = torch_randperm(n, seed + uint64_t(epoch));
  const int64_t num_samples = drop_last ? n / world_size : (n + world_size - 1) / world_size;
  const int64_t total = num_samples * world_size;
  if (total > n) {
    const std::vector<int64_t> head = perm;
    while (int64_t(perm.size()) < total) {
      int64_t need = total - int64_t(perm.size());
      perm.insert(perm.end(), head.begin(), head.begin() + std::min<int64_t>(need, n));
    }
  } else {
    perm.resize(size_t(total));
  }
  std::vector<int64_t> out;
  out.reserve(size_t(num_samples));
  for (int64_t i = rank; i < total; i += world_size) out.push_back(perm[size_t(i)]);
  return out;
}

std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch, int64_t world_size,
                                 int64_t rank) {
  if (world_size == 1) {
    BR_CHECK(rank == 0, "epoch_order: rank {} out of range for world_size 1", rank);
    return random_sampler_order(n, seed, epoch);
  }
  return distributed_sampler_order(n, seed, epoch, world_size, rank);
}

}  // namespace br
