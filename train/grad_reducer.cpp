#include "train/grad_reducer.h"

#include "core/error.h"

namespace br {

GradientReducer::GradientReducer(Communicator& comm, Tensor flat, std::vector<int64_t> group_offsets,
                                 size_t bucket_bytes)
    : comm_(comm), flat_(std::move(flat)), group_offsets_(std::move(group_offsets)) {
  check_defined("GradientReducer", "flat", flat_);
  BR_CHECK(flat_.dim() == 1 && (flat_.dtype() == DType::f32 || flat_.dtype() == DType::f64),
           "GradientReducer: the gradient buffer must be a 1-D f32 or f64 tensor, got {}",
           flat_.str());
  BR_CHECK(bucket_bytes > 0, "GradientReducer: bucket_bytes must be positive");
  BR_CHECK(group_offsets_.size() >= 2 && group_offsets_.front() == 0 &&
               group_offsets_.back() == flat_.numel(),
           "GradientReducer: group offsets must run from 0 to {} (the buffer's length)",
           flat_.numel());
  for (size_t g = 1; g < group_offsets_.size(); ++g)
    BR_CHECK(group_offsets_[g] >= group_offsets_[g - 1],
             "GradientReducer: group offsets decrease at group {}", g);
  const int groups = int(group_offsets_.size()) - 1;
  const size_t elem = dtype_size(flat_.dtype());
  int64_t begin = 0;
  for (int g = 0; g < groups; ++g) {
    const int64_t end = group_offsets_[size_t(g) + 1];
    if (size_t(end - begin) * elem >= bucket_bytes || g == groups - 1) {
      buckets_.emplace_back(begin, end);
      bucket_last_group_.push_back(g);
      begin = end;
    }
  }
}

void GradientReducer::launch(size_t b) {
  auto [begin, end] = buckets_[b];
  if (end > begin) comm_.all_reduce_sum_async(flat_.rows(begin, end));
}

void GradientReducer::group_ready(int group) {
  const int groups = int(group_offsets_.size()) - 1;
  BR_CHECK(group == next_group_ && group < groups,
           "GradientReducer: group {} announced, expected group {} of {}", group, next_group_,
           groups);
  ++next_group_;
  while (next_bucket_ < buckets_.size() && bucket_last_group_[next_bucket_] < next_group_) {
    launch(next_bucket_++);
    ++started_early_this_step_;
  }
}

void GradientReducer::finish() {
  while (next_bucket_ < buckets_.size()) launch(next_bucket_++);
  comm_.join();
  comm_.divide_by_world_size(flat_);  // as average_gradients does, so both agree bit for bit
  comm_.synchronize();  // a stuck collective fails here, under the deadline
  started_early_ = started_early_this_step_;
  started_early_this_step_ = 0;
  next_group_ = 0;
  next_bucket_ = 0;
}

}  // namespace br
