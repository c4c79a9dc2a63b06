#include "train/eval_shard.h"

#include <algorithm>

#include "core/error.h"
#include "train/communicator.h"

namespace br {

std::vector<int64_t> shard_eval_indices(int64_t n, int64_t batch, int64_t world_size, int64_t rank) {
  BR_CHECK(n > 0 && batch > 0 && world_size > 0 && rank >= 0 && rank < world_size,
           "shard_eval_indices: need n > 0, batch > 0, 0 <= rank < world_size; got n={} batch={} "
           "world_size={} rank={}", n, batch, world_size, rank);
  const int64_t block = batch * world_size;
  const int64_t total = (n + block - 1) / block * block;
  std::vector<int64_t> out;
  out.reserve(size_t(total / world_size));
  for (int64_t start = rank * batch; start < total; start += block)
    for (int64_t i = start; i < start + batch; ++i) out.push_back(i % n);
  return out;
}

std::vector<size_t> longest_first(const std::vector<int64_t>& lengths) {
  std::vector<size_t> order(lengths.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return lengths[a] > lengths[b]; });
  return order;
}

std::vector<double> merge_eval_outputs(const std::vector<std::vector<double>>& per_rank, int64_t n,
                                       int64_t batch, int64_t per_example) {
  const int64_t world = int64_t(per_rank.size());
  BR_CHECK(world > 0 && n > 0 && batch > 0 && per_example > 0,
           "merge_eval_outputs: need ranks, n, batch, per_example > 0; got {} ranks n={} batch={} "
           "per_example={}", world, n, batch, per_example);
  const int64_t block = batch * world;
  const int64_t steps = (n + block - 1) / block;
  const int64_t expect = steps * batch * per_example;
  for (int64_t r = 0; r < world; ++r)
    BR_CHECK(int64_t(per_rank[size_t(r)].size()) == expect,
             "merge_eval_outputs: rank {} has {} values, expected {} ({} batches of {} x {})", r,
             per_rank[size_t(r)].size(), expect, steps, batch, per_example);
  std::vector<double> out;
  out.reserve(size_t(n * per_example));
  for (int64_t s = 0; s < steps; ++s)
    for (int64_t r = 0; r < world; ++r)
      for (int64_t k = 0; k < batch * per_example; ++k) {
        if (int64_t(out.size()) == n * per_example) return out;
        out.push_back(per_rank[size_t(r)][size_t(s * batch * per_example + k)]);
      }
  return out;
}

std::vector<double> gather_eval_outputs(Communicator& comm, const std::vector<double>& local,
                                        int64_t n, int64_t batch, int64_t per_example) {
  std::vector<double> all = comm.all_gather(local);
  const size_t each = local.size();
  BR_CHECK(all.size() == each * size_t(comm.world_size()),
           "gather_eval_outputs: ranks hold different numbers of outputs ({} in total, {} here)",
           all.size(), each);
  std::vector<std::vector<double>> per_rank(static_cast<size_t>(comm.world_size()));
  for (size_t r = 0; r < per_rank.size(); ++r)
    per_rank[r].assign(all.begin() + long(r * each), all.begin() + long((r + 1) * each));
  return merge_eval_outputs(per_rank, n, batch, per_example);
}

}  // namespace br
