// Tape: the store of activations saved for backward. Forward calls save(key, x, policy); backward
// calls restore(key) in reverse. The tape applies the site's policy (dense; dense in a lower
// precision; Back Razor sparse = 1-bit mask + exactly k kept values per sample; or recompute =
// nothing stored, the owner rebuilds the tensor in backward from other sites) and accounts every
// byte it holds, per site, under MemCategory::saved_activations.
//
// It lives in models/, above the kernels it calls (cast, sparse pack), and is keyed by the model's
// one vocabulary of saved tensors: (layer, Site).
#pragma once
#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace br {

// What backward needs from forward, one vocabulary for the tape, the policy and the reports. The
// first kSites are the policy sites a BackRazorPolicy chooses a save mode for. Per encoder layer:
// the attention input (shared by Q, K and V, saved once), Q, K, the attention probabilities, V, the
// attention-output dense input, the first LayerNorm input, the FFN1 input, the GELU input, the FFN2
// input, the second LayerNorm input. Once per model: the embedding LayerNorm input, the pooler
// input ([CLS] hidden state) and the classifier input (pooled output after dropout).
// The rest are always saved dense beside them: LayerNorm statistics, the flash attention kernel's
// per-row logsumexp and output, the pooler's tanh output, and a checkpointed layer's input.
enum class Site : uint8_t {
  attn_input,
  q,
  k,
  probs,
  v,
  attn_out_input,
  ln1_input,
  ffn1_input,
  gelu_input,
  ffn2_input,
  ln2_input,
  emb_ln_input,
  pooler_input,
  classifier_input,
  // always dense:
  emb_ln_mean,
  emb_ln_rstd,
  ln1_mean,
  ln1_rstd,
  ln2_mean,
  ln2_rstd,
  attn_lse,       // flash: f32 [B,N,S]
  attn_out,       // flash: the attention output [B,N,S,D] when attn_out_input is not dense
  pooler_output,  // tanh output [B,H]
  layer_input,    // a checkpointed encoder layer's input [B,S,H]: all it keeps until backward
};
constexpr int kSites = 14;       // policy sites: Site(0) .. Site(kSites - 1)
constexpr int kSavedKinds = 24;  // every Site
std::string_view site_name(Site s);
inline bool is_policy_site(Site s) { return int(s) < kSites; }

// A saved tensor's name on the tape: an encoder layer's site, or (layer -1) a model-level one.
struct TapeKey {
  int layer = -1;
  Site site = Site::attn_input;
  std::string name() const;  // "layer3.q", "emb_ln_input"
  auto operator<=>(const TapeKey&) const = default;
};

enum class SaveMode : uint8_t { dense, low_precision, sparse, recompute };
std::string_view save_mode_name(SaveMode m);

struct SitePolicy {
  SaveMode mode = SaveMode::dense;
  DType value_dtype = DType::f16;  // low_precision and sparse: dtype of the stored values
  double prune_ratio = 0.8;        // sparse: fraction pruned per sample
  bool operator==(const SitePolicy&) const = default;
};

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
  TapeKey key;
  std::string site;  // key.name()
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

  // Saves x under `key` (unique until restored). A dense save of a tensor that owns its whole
  // storage and has no other holder adopts it instead of copying. A recompute save stores nothing
  // and only records the site (0 bytes held); restoring it is an error. `keep`, for a sparse
  // policy: the values kept per sample, at most a sample's elements (0: backrazor_keep_count of
  // them; a batch split by length keeps the count of the whole batch's padded length).
  void save(TapeKey key, const Tensor& x, const SitePolicy& policy = {}, int64_t keep = 0);
  // The dense reconstruction (pruned positions exactly zero), in the saved dtype; frees the entry.
  Tensor restore(TapeKey key);
  bool has(TapeKey key) const { return entries_.count(key) != 0; }
  // The tensor a dense save holds, left on the tape (a checkpoint's kept output, read by the next
  // layer's recompute before its own backward restores it). Throws for a copy (sparse, low).
  const Tensor& peek(TapeKey key) const;

  // Sample-chunked access (dim 0) to a site the tape keeps as a copy, so that its owner never holds
  // the whole dense tensor at once (the attention probabilities, models/bert_layers.cpp).
  // rows_chunkable: whether `policy` keeps a copy of a `dtype` tensor (sparse, or low precision in
  // another dtype) rather than the tensor itself.
  static bool rows_chunkable(const SitePolicy& policy, DType dtype);
  // begin_rows allocates what save() of a whole `shape`/`dtype` tensor would hold (mask + values, or
  // the low-precision copy: the same bytes) and records the site; save_rows then fills samples
  // [b0, b0 + x.size(0)) from x. Packing is per sample, so the stored bytes equal save()'s once
  // every sample has been written (the caller's duty).
  void begin_rows(TapeKey key, const Shape& shape, DType dtype, const SitePolicy& policy,
                  int64_t keep = 0);
  void save_rows(TapeKey key, int64_t b0, const Tensor& x);
  // Writes samples [b0, b0 + out.size(0)) of the dense reconstruction (what restore() would give)
  // into out; the entry stays until release(key) frees it.
  void restore_rows(TapeKey key, int64_t b0, const Tensor& out) const;
  void release(TapeKey key);
  // What save() of a whole `shape`/`dtype` tensor under a recompute policy does, without the
  // tensor (its owner forms it only by chunks): records the site, holds nothing.
  void record_recompute(TapeKey key, const Shape& shape, DType dtype, const SitePolicy& policy);

  int64_t bytes() const { return bytes_; }            // held now
  int64_t peak_bytes() const { return peak_bytes_; }  // max held since clear()
  const std::vector<SiteRecord>& records() const { return records_; }
  void clear();  // drops every entry and record (start of a step)
  Device device() const { return device_; }

 private:
  Device device_;
  // Appends the site's record and counts the bytes its entry holds.
  void note(TapeKey key, const SavedTensor& e, int64_t dense_bytes);
  std::map<TapeKey, SavedTensor> entries_;
  std::vector<SiteRecord> records_;
  int64_t bytes_ = 0;
  int64_t peak_bytes_ = 0;
};

}  // namespace br
