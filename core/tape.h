// Tape: the store of activations saved for backward. Forward calls save(site, x, policy); backward
// calls restore(site) in reverse. The tape applies the site's policy (dense; dense in a lower
// precision; Back Razor sparse = 1-bit mask + exactly k kept values per sample; or recompute =
// nothing stored, the owner rebuilds the tensor in backward from other sites) and accounts every
// byte it holds, per site, under MemCategory::saved_activations.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace br {

enum class SaveMode : uint8_t { dense, low_precision, sparse, recompute };
std::string_view save_mode_name(SaveMode m);

struct SitePolicy {
  SaveMode mode = SaveMode::dense;
  DType value_dtype = DType::f16;  // low_precision and sparse: dtype of the stored values
  double prune_ratio = 0.8;        // sparse: fraction pruned per sample
};

// Back Razor keep count per sample of n elements (DESIGN.md): the count the reference keeps when
// magnitudes are distinct, k = n - floor(n * prune_ratio) + 1, clipped to [1, n].
int64_t backrazor_keep_count(int64_t n, double prune_ratio);

// One saved tensor, as stored. For sparse sites `mask` holds one bit per element (layout in
// kernels/sparse_pack.h) and `values` the kept values in row-major order, exactly k per sample.
struct SavedTensor {
  Shape shape;
  DType dtype = DType::f32;  // dtype of the tensor that was saved (and that restore returns)
  SitePolicy policy;
  Tensor dense;   // dense and low_precision
  Tensor mask;    // sparse
  Tensor values;  // sparse
  int64_t kept_per_sample = 0;
  // Category the dense tensor goes back to when restored: its original one if adopted.
  MemCategory restore_category = MemCategory::activations;
  int64_t bytes() const;  // bytes held by dense + mask + values
};

// What a site held in the current step, kept after restore for memory reports.
struct SiteRecord {
  std::string site;
  Shape shape;
  DType dtype;
  SitePolicy policy;
  int64_t dense_bytes = 0;   // numel * dtype size: what a dense save would hold
  int64_t stored_bytes = 0;  // what this tape held
  int64_t kept_per_sample = 0;
};

class Tape {
 public:
  explicit Tape(Device device = Device::cpu) : device_(device) {}

  // Saves x under `site` (unique until restored). A dense save of a tensor that owns its whole
  // storage and has no other holder adopts it instead of copying. A recompute save stores nothing
  // and only records the site (0 bytes held); restoring it is an error.
  void save(const std::string& site, const Tensor& x, const SitePolicy& policy = {});
  // The dense reconstruction (pruned positions exactly zero), in the saved dtype; frees the entry.
  Tensor restore(const std::string& site);
  bool has(const std::string& site) const { return entries_.count(site) != 0; }

  int64_t bytes() const { return bytes_; }            // held now
  int64_t peak_bytes() const { return peak_bytes_; }  // max held since clear()
  const std::vector<SiteRecord>& records() const { return records_; }
  void clear();  // drops every entry and record (start of a step)
  Device device() const { return device_; }

 private:
  Device device_;
  std::map<std::string, SavedTensor> entries_;
  std::vector<SiteRecord> records_;
  int64_t bytes_ = 0;
  int64_t peak_bytes_ = 0;
};

}  // namespace br
