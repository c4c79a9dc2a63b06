#include "train/batch.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace br {

BertBatch collate(const std::vector<Example>& examples, const std::vector<Encoding>& encodings,
                  const std::vector<int64_t>& idx, Device device, bool regression, int32_t pad_id) {
  BR_CHECK(examples.size() == encodings.size(), "collate: {} examples but {} encodings",
           examples.size(), encodings.size());
  std::vector<Encoding> enc;
  for (int64_t i : idx) {
    BR_CHECK(i >= 0 && size_t(i) < examples.size(), "collate: index {} outside [0, {})", i,
             examples.size());
    enc.push_back(encodings[size_t(i)]);
  }
  int64_t S = pad_to_longest(enc, pad_id);
  const int64_t B = int64_t(idx.size());
  std::vector<int32_t> ids, tt, am, ex, labels;
  std::vector<float> values;
  bool labeled = true;
  for (int64_t b = 0; b < B; ++b) {
    const Encoding& e = enc[size_t(b)];
    ids.insert(ids.end(), e.input_ids.begin(), e.input_ids.end());
    tt.insert(tt.end(), e.token_type_ids.begin(), e.token_type_ids.end());
    am.insert(am.end(), e.attention_mask.begin(), e.attention_mask.end());
    const Example& x = examples[size_t(idx[size_t(b)])];
    ex.push_back(int32_t(idx[size_t(b)]));
    labels.push_back(x.label);
    values.push_back(x.value);
    labeled = labeled && x.labeled();
  }
  BertBatch batch;
  batch.input_ids = Tensor::from_host(ids, {B, S}, device);
  batch.token_type_ids = Tensor::from_host(tt, {B, S}, device);
  batch.attention_mask = Tensor::from_host(am, {B, S}, device);
  batch.example_ids = Tensor::from_host(ex, {B}, device);
  if (labeled)
    batch.labels = regression ? Tensor::from_host(values, {B}, device)
                              : Tensor::from_host(labels, {B}, device);
  return batch;
}

BertBatch collate(const Dataset& ds, const std::vector<int64_t>& idx, Device device, bool regression,
                  int32_t pad_id) {
  return collate(ds.examples, ds.encodings, idx, device, regression, pad_id);
}

LengthCost length_cost(const BertConfig& c) {
  LengthCost cost;
  const double H = double(c.hidden_size), N = double(c.num_attention_heads);
  cost.quadratic = H * H / (48.0 * N);
  return cost;
}

std::vector<std::vector<size_t>> split_by_length(const std::vector<int64_t>& lengths,
                                                 const LengthCost& cost) {
  const size_t n = lengths.size();
  std::vector<size_t> by_length(n);
  std::iota(by_length.begin(), by_length.end(), size_t(0));
  std::stable_sort(by_length.begin(), by_length.end(),
                   [&](size_t a, size_t b) { return lengths[a] < lengths[b]; });
  // best[j]: the least cost of the j shortest in groups of neighbours in that order; a group of
  // the i-th to the j-th pads to the j-th's length. from[j]: where its last group starts.
  std::vector<double> best(n + 1, 0.0);
  std::vector<size_t> from(n + 1, 0);
  for (size_t j = 1; j <= n; ++j) {
    best[j] = -1;
    for (size_t i = 0; i < j; ++i) {
      const double c = best[i] + cost(int64_t(j - i), lengths[by_length[j - 1]]);
      if (best[j] < 0 || c < best[j]) best[j] = c, from[j] = i;
    }
  }
  std::vector<std::vector<size_t>> groups;
  for (size_t j = n; j > 0; j = from[j]) {
    std::vector<size_t> g(by_length.begin() + int64_t(from[j]), by_length.begin() + int64_t(j));
    std::sort(g.begin(), g.end());
    groups.push_back(std::move(g));
  }
  return groups;
}

}  // namespace br
