#include "models/tape.h"

#include <array>

#include "kernels/cast.h"
#include "kernels/sparse_pack.h"

namespace br {

std::string_view save_mode_name(SaveMode m) {
  switch (m) {
    case SaveMode::dense: return "dense";
    case SaveMode::low_precision: return "low_precision";
    case SaveMode::sparse: return "sparse";
    case SaveMode::recompute: return "recompute";
  }
  return "?";
}

namespace {
constexpr std::array<std::string_view, kSavedKinds> kSiteNames = {
    "attn_input", "q", "k", "probs", "v", "attn_out_input", "ln1_input", "ffn1_input",
    "gelu_input", "ffn2_input", "ln2_input", "emb_ln_input", "pooler_input", "classifier_input",
    "emb_ln_mean", "emb_ln_rstd", "ln1_mean", "ln1_rstd", "ln2_mean", "ln2_rstd", "attn_lse",
    "attn_out", "pooler_output", "layer_input"};
}  // namespace

std::string_view site_name(Site s) {
  BR_CHECK(int(s) < kSavedKinds, "site_name: Site {} out of range", int(s));
  return kSiteNames[size_t(s)];
}

std::string TapeKey::name() const {
  if (layer < 0) return std::string(site_name(site));
  return fmt::format("layer{}.{}", layer, site_name(site));
}

int64_t SavedTensor::bytes() const {
  return int64_t(dense.nbytes() + mask.nbytes() + values.nbytes());
}

namespace {

void move_to(const Tensor& t, MemCategory category) {
  if (t.defined() && t.category() != category) t.storage()->set_category(category);
}

// Elements per sample (dim 0) of a tensor saved whole.
int64_t sample_numel(const Tensor& x) {
  return x.dim() >= 1 && x.size(0) > 0 ? x.numel() / x.size(0) : x.numel();
}

// A sparse save's kept count per sample, given by its owner: in [1, n].
int64_t checked_keep(const std::string& site, int64_t keep, int64_t n) {
  BR_CHECK(keep >= 1 && keep <= n, "Tape: site '{}': {} kept values per sample of {} elements",
           site, keep, n);
  return keep;
}

}  // namespace

void Tape::save(TapeKey key, const Tensor& x, const SitePolicy& policy, int64_t keep) {
  const std::string site = key.name();
  BR_CHECK(!entries_.count(key), "Tape::save: site '{}' is already saved (restore it first)", site);
  check_defined("Tape::save", site.c_str(), x);
  BR_CHECK(x.device() == device_, "Tape::save: site '{}': tensor {} is not on the tape's device {}",
           site, x.str(), device_name(device_));
  SavedTensor e;
  e.shape = x.shape();
  e.dtype = x.dtype();
  e.policy = policy;
  SaveMode mode = policy.mode;
  if (mode == SaveMode::low_precision && policy.value_dtype == x.dtype()) mode = SaveMode::dense;
  switch (mode) {
    case SaveMode::dense:
      if (x.covers_storage() && x.storage_use_count() == 1) {
        e.dense = x;
        e.restore_category = x.category();
        move_to(x, MemCategory::saved_activations);
      } else {
        e.dense = x.clone(MemCategory::saved_activations);
      }
      break;
    case SaveMode::low_precision:
      BR_CHECK(is_floating(x.dtype()) && is_floating(policy.value_dtype),
               "Tape::save: site '{}': low precision save of {} as {} needs floating dtypes", site,
               x.str(), dtype_name(policy.value_dtype));
      e.dense = cast(x, policy.value_dtype, MemCategory::saved_activations);
      break;
    case SaveMode::sparse: {
      SparsePack p;
      if (keep == 0) {
        p = pack_topk(x, policy.prune_ratio, policy.value_dtype, MemCategory::saved_activations);
      } else {
        BR_CHECK(x.dim() >= 1 && x.numel() > 0, "Tape::save: site '{}': a sparse save of {}", site,
                 x.str());
        p.shape = x.shape();
        p.dtype = x.dtype();
        p.batch = x.size(0);
        p.n = x.numel() / p.batch;
        p.k = checked_keep(site, keep, p.n);
        p.mask = Tensor::empty({p.batch, sparse_mask_row_bytes(p.n)}, DType::u8, device_,
                               MemCategory::saved_activations);
        p.values = Tensor::empty({p.batch * p.k}, policy.value_dtype, device_,
                                 MemCategory::saved_activations);
        pack_topk_into(p, x);
      }
      e.mask = p.mask;
      e.values = p.values;
      e.kept_per_sample = p.k;
      break;
    }
    case SaveMode::recompute:
      break;
  }
  if (mode == SaveMode::dense || mode == SaveMode::low_precision)
    e.kept_per_sample = sample_numel(x);
  note(key, e, int64_t(x.nbytes()));
  if (mode != SaveMode::recompute) entries_.emplace(key, std::move(e));
}

void Tape::note(TapeKey key, const SavedTensor& e, int64_t dense_bytes) {
  SiteRecord r;
  r.key = key;
  r.site = key.name();
  r.shape = e.shape;
  r.dtype = e.dtype;
  r.policy = e.policy;
  r.dense_bytes = dense_bytes;
  r.stored_bytes = e.bytes();
  r.kept_per_sample = e.kept_per_sample;
  bytes_ += r.stored_bytes;
  peak_bytes_ = std::max(peak_bytes_, bytes_);
  records_.push_back(std::move(r));
}

void Tape::record_recompute(TapeKey key, const Shape& shape, DType dtype,
                            const SitePolicy& policy) {
  BR_CHECK(policy.mode == SaveMode::recompute,
           "Tape::record_recompute: site '{}' has a {} policy, not recompute", key.name(),
           save_mode_name(policy.mode));
  BR_CHECK(!entries_.count(key), "Tape::record_recompute: site '{}' is already saved", key.name());
  SavedTensor e;
  e.shape = shape;
  e.dtype = dtype;
  e.policy = policy;
  note(key, e, shape_numel(shape) * int64_t(dtype_size(dtype)));
}

const Tensor& Tape::peek(TapeKey key) const {
  auto it = entries_.find(key);
  BR_CHECK(it != entries_.end(), "Tape::peek: site '{}' is not saved", key.name());
  const SavedTensor& e = it->second;
  BR_CHECK(!e.mask.defined() && e.dense.dtype() == e.dtype,
           "Tape::peek: site '{}' is kept as a copy, not as the tensor", key.name());
  return e.dense;
}

Tensor Tape::restore(TapeKey key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    const std::string site = key.name();
    for (const SiteRecord& r : records_)
      BR_CHECK(!(r.key == key && r.policy.mode == SaveMode::recompute),
               "Tape::restore: site '{}' was saved as recompute: nothing is stored, its owner must "
               "rebuild it", site);
    std::string held;
    for (const auto& [k, e] : entries_) held += (held.empty() ? "" : ", ") + k.name();
    fail("Tape::restore: site '{}' is not saved (held: {})", site, held.empty() ? "none" : held);
  }
  SavedTensor e = std::move(it->second);
  entries_.erase(it);
  bytes_ -= e.bytes();
  Tensor out;
  if (e.mask.defined()) {
    SparsePack p;
    p.shape = e.shape;
    p.dtype = e.dtype;
    p.batch = e.shape[0];
    p.n = shape_numel(e.shape) / p.batch;
    p.k = e.kept_per_sample;
    p.mask = std::move(e.mask);
    p.values = std::move(e.values);
    out = unpack(p, MemCategory::activations);
  } else if (e.dense.dtype() != e.dtype) {
    out = cast(e.dense, e.dtype, MemCategory::activations);
  } else {
    out = std::move(e.dense);
    move_to(out, e.restore_category);
  }
  return out;
}

bool Tape::rows_chunkable(const SitePolicy& policy, DType dtype) {
  return policy.mode == SaveMode::sparse ||
         (policy.mode == SaveMode::low_precision && policy.value_dtype != dtype);
}

namespace {

// Samples [b0, b0 + nb) of a sparse entry as a pack of their own (views of the entry's mask and
// values: each sample owns one mask row and k values).
SparsePack pack_rows(const SavedTensor& e, int64_t b0, int64_t nb) {
  SparsePack p;
  p.shape = e.shape;
  p.shape[0] = nb;
  p.dtype = e.dtype;
  p.batch = nb;
  p.n = shape_numel(e.shape) / e.shape[0];
  p.k = e.kept_per_sample;
  p.mask = e.mask.rows(b0, b0 + nb);
  p.values = e.values.rows(b0 * p.k, (b0 + nb) * p.k);
  return p;
}

}  // namespace

void Tape::begin_rows(TapeKey key, const Shape& shape, DType dtype, const SitePolicy& policy,
                      int64_t keep) {
  const std::string site = key.name();
  BR_CHECK(!entries_.count(key), "Tape::begin_rows: site '{}' is already saved (restore it first)",
           site);
  BR_CHECK(rows_chunkable(policy, dtype) && !shape.empty() && shape[0] > 0,
           "Tape::begin_rows: site '{}': a {} save of {} {} is not kept as a copy by samples", site,
           save_mode_name(policy.mode), dtype_name(dtype), shape_str(shape));
  SavedTensor e;
  e.shape = shape;
  e.dtype = dtype;
  e.policy = policy;
  const int64_t batch = shape[0], n = shape_numel(shape) / batch;
  if (policy.mode == SaveMode::sparse) {
    e.kept_per_sample = keep ? checked_keep(site, keep, n) : backrazor_keep_count(n, policy.prune_ratio);
    e.mask = Tensor::empty({batch, sparse_mask_row_bytes(n)}, DType::u8, device_,
                           MemCategory::saved_activations);
    e.values = Tensor::empty({batch * e.kept_per_sample}, policy.value_dtype, device_,
                             MemCategory::saved_activations);
  } else {
    e.kept_per_sample = n;
    e.dense = Tensor::empty(shape, policy.value_dtype, device_, MemCategory::saved_activations);
  }
  note(key, e, shape_numel(shape) * int64_t(dtype_size(dtype)));
  entries_.emplace(key, std::move(e));
}

void Tape::save_rows(TapeKey key, int64_t b0, const Tensor& x) {
  auto it = entries_.find(key);
  BR_CHECK(it != entries_.end(), "Tape::save_rows: site '{}' has no begin_rows", key.name());
  const SavedTensor& e = it->second;
  Shape want = e.shape;
  want[0] = x.dim() >= 1 ? x.size(0) : 0;
  BR_CHECK(x.shape() == want && x.dtype() == e.dtype && b0 >= 0 && b0 + want[0] <= e.shape[0],
           "Tape::save_rows: site '{}' of {} {}: samples from {} of {}", key.name(),
           dtype_name(e.dtype), shape_str(e.shape), b0, x.str());
  if (e.mask.defined())
    pack_topk_into(pack_rows(e, b0, want[0]), x);
  else
    cast(e.dense.rows(b0, b0 + want[0]), x);
}

void Tape::restore_rows(TapeKey key, int64_t b0, const Tensor& out) const {
  auto it = entries_.find(key);
  BR_CHECK(it != entries_.end(), "Tape::restore_rows: site '{}' is not saved", key.name());
  const SavedTensor& e = it->second;
  BR_CHECK(e.mask.defined() || e.dense.dtype() != e.dtype,
           "Tape::restore_rows: site '{}' is kept as is, not as a copy: restore() it", key.name());
  Shape want = e.shape;
  want[0] = out.dim() >= 1 ? out.size(0) : 0;
  BR_CHECK(out.shape() == want && out.dtype() == e.dtype && b0 >= 0 && b0 + want[0] <= e.shape[0],
           "Tape::restore_rows: site '{}' of {} {}: samples from {} into {}", key.name(),
           dtype_name(e.dtype), shape_str(e.shape), b0, out.str());
  if (e.mask.defined())
    unpack(out, pack_rows(e, b0, want[0]));
  else
    cast(out, e.dense.rows(b0, b0 + want[0]));
}

void Tape::release(TapeKey key) {
  auto it = entries_.find(key);
  BR_CHECK(it != entries_.end(), "Tape::release: site '{}' is not saved", key.name());
  bytes_ -= it->second.bytes();
  entries_.erase(it);
}

// An adopted tensor still held by its producer leaves the saved_activations count with the entry.
void Tape::clear() {
  for (auto& [k, e] : entries_)
    if (e.dense.defined() && e.dense.storage_use_count() > 1) move_to(e.dense, e.restore_category);
  entries_.clear();
  records_.clear();
  bytes_ = 0;
  peak_bytes_ = 0;
}

}  // namespace br
