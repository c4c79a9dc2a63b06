// Data-parallel gradient averaging overlapped with backward, as DDP's reducer does it.
//
// The model keeps every gradient in one contiguous buffer whose groups are laid out in the order
// backward finishes them (BertWeights::allocate_flat). The reducer packs consecutive groups into
// buckets of about `bucket_bytes` (a bucket closes at the first group that takes it to the cap)
// and, as backward announces the last group of a bucket, all-reduces that bucket's range of the
// buffer in place. With NCCL the collective runs on the communication stream while the compute
// stream carries on with the earlier layers' backward; the host transports reduce it there and
// then. finish() reduces whatever was not announced, makes the compute stream wait, and divides by
// the world size: the gradients then equal Communicator::average_gradients' result bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "train/communicator.h"

namespace br {

class GradientReducer {
 public:
  // flat: the gradient buffer (f32 or f64, 1-D); group_offsets: num_groups + 1 increasing element
  // offsets into it, from 0 to flat.numel().
  GradientReducer(Communicator& comm, Tensor flat, std::vector<int64_t> group_offsets,
                  size_t bucket_bytes = Communicator::kDefaultBucketBytes);

  // Group `group` is final: groups must be announced in order 0, 1, ... within a step.
  void group_ready(int group);
  // Reduces the buckets not yet started, joins, and averages. Ready for the next step afterwards.
  void finish();

  // Element ranges [begin, end) of the buckets, in launch order.
  const std::vector<std::pair<int64_t, int64_t>>& buckets() const { return buckets_; }
  // How many buckets were started from group_ready() (that is, overlapped) in the last step.
  size_t buckets_started_early() const { return started_early_; }

 private:
  void launch(size_t bucket);

  Communicator& comm_;
  Tensor flat_;
  std::vector<int64_t> group_offsets_;
  std::vector<std::pair<int64_t, int64_t>> buckets_;
  std::vector<int> bucket_last_group_;
  int next_group_ = 0;
  size_t next_bucket_ = 0;
  size_t started_early_ = 0, started_early_this_step_ = 0;
};

}  // namespace br
