// Sharded evaluation with HF's ShardSampler semantics (spec §7): indices 0..N-1 padded cyclically
// to a multiple of batch * world; in each block of batch * world, rank r takes [r*batch, (r+1)*batch).
// Gathering every rank's outputs and interleaving them by block restores dataset order; the
// result is truncated to N, so metrics see exactly the N examples a single process sees.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace br {

class Communicator;

// The dataset indices rank `rank` evaluates, in order; always a whole number of batches.
std::vector<int64_t> shard_eval_indices(int64_t n, int64_t batch, int64_t world_size, int64_t rank);

// The order in which a rank runs its shard: positions 0..lengths.size()-1 by decreasing length,
// equal lengths in their shard order (a stable sort). A batch is padded to its longest example,
// so consecutive batches of this order pad far less than dataset order does (RTE dev at
// max_seq_length 128, batch 8: 32,633 padded tokens in dataset order, 18,267 sorted, for 17,894
// real). Outputs are put back in shard order, so nothing downstream sees the order.
std::vector<size_t> longest_first(const std::vector<int64_t>& lengths);

// Reassembles per-example outputs (per_example values each, e.g. num_labels logits) computed by
// every rank over its shard_eval_indices(n, batch, W, rank), in that order, into dataset order
// 0..n-1: n * per_example values, identical on every rank.
std::vector<double> gather_eval_outputs(Communicator& comm, const std::vector<double>& local,
                                        int64_t n, int64_t batch, int64_t per_example);

// The same reordering without communication: `per_rank[r]` holds rank r's outputs.
std::vector<double> merge_eval_outputs(const std::vector<std::vector<double>>& per_rank, int64_t n,
                                       int64_t batch, int64_t per_example);

}  // namespace br
