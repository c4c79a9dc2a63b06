// Back Razor policy for BERT: which saved-activation sites are stored dense, in low precision, or
// sparse (1-bit mask + exactly k kept values per sample), with which prune ratio and value dtype.
#pragma once
#include <array>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "models/tape.h"

namespace br {

// The policy site named `name` (Site(0) .. Site(kSites - 1)); throws listing the names.
Site site_from_name(std::string_view name);

struct BackRazorPolicy {
  std::array<SitePolicy, kSites> sites{};  // default: every site dense
  // Sparse sites choose their top-k among real tokens: padding rows are zeroed before packing.
  // Exact for the gradient (padding positions get a zero gradient), so the kept values all go to
  // real tokens at the same bytes. False reproduces the reference, which ranks padding too.
  bool skip_padding = true;
  // What built it, for reports: the preset's name, then "+sites" once overrides were applied.
  std::string name = "none";

  const SitePolicy& operator[](Site s) const { return sites.at(size_t(s)); }  // policy sites only
  SitePolicy& operator[](Site s) { return sites.at(size_t(s)); }

  // "none": everything dense. "seed": the reference BERT implementation's choice — Q/K/V input,
  // Q, K, probabilities, V, attention-output dense input and classifier input sparse with
  // `value_dtype` values; the first LayerNorm input sparse with fp32 values (the reference builds
  // that LayerNorm without `half`); the FFN, LN2, embeddings and pooler dense. "all": every site
  // sparse with `value_dtype` values. "balanced": `all`'s memory class with far less gradient
  // error (docs/BACKRAZOR.md): every site sparse except the GELU input, kept whole in
  // `value_dtype` because GELU's derivative needs every value (pruned entries would get
  // gelu'(0) = 0.5); the FFN2 input not stored but recomputed as gelu(GELU input) in backward;
  // and the pooler and classifier inputs dense (one H-vector per sample, negligible bytes, and
  // pruning them distorts the head's gradient most).
  static BackRazorPolicy preset(std::string_view name, double prune_ratio = 0.8,
                                DType value_dtype = DType::f16);
  // Applies per-site overrides written as comma-separated `site=mode[:dtype][:ratio]` items:
  // `probs=dense`, `gelu_input=low:fp16` (low precision, fp16 or bf16), `ffn2_input=sparse`,
  // `q=sparse:fp32`, `v=sparse:fp16:0.9`; a sparse item without dtype or ratio keeps this policy's
  // values for that site when it is sparse already, else fp16 and 0.8. `ffn2_input=recompute`
  // stores nothing for the FFN2 input and recomputes it from the GELU input in backward (exact
  // when the GELU input is dense). Throws naming the item.
  void apply_overrides(std::string_view spec);
  bool any_sparse() const;
  // Every site dense or recomputed from a dense one: the gradients are exact.
  bool exact() const;
  bool operator==(const BackRazorPolicy&) const = default;
  std::string describe() const;  // one line per non-dense site
};

// How one encoder layer runs in training: the save policy of its sites, and whether it is a
// checkpoint (exact gradient checkpointing): forward then keeps only the layer's input, and
// backward recomputes the layer (same dropout masks) right before its backward, so its internal
// activations live only from the recompute to its backward, saved as `policy` says.
//
// A checkpoint with an exact policy inside, followed by another checkpoint, keeps its output too:
// the LN2 input (the sum before the layer's last LayerNorm) and its statistics, instead of the next
// layer keeping its input, which is that LayerNorm of it. Its recompute then stops at the FFN2
// input (FFN2, its dropout and LN2 are not run again: a third of the layer's GEMM work), for the
// same bytes at the end of the forward and one [B,S,H] tensor more alive in backward. A checkpoint
// with Back Razor inside keeps only its input, as bytes are what it is for; so does one with
// `min_bytes` (the planner's smallest exact plans).
struct LayerPlan {
  BackRazorPolicy policy;
  bool checkpoint = false;
  bool min_bytes = false;
  // Whether this checkpoint keeps its output when the next layer is a checkpoint too.
  bool keeps_output() const { return checkpoint && !min_bytes && policy.exact(); }
};

// Per-layer plans written as comma-separated `RANGE=PLAN` items (`--backrazor_layers`). RANGE is a
// layer `3`, a range `0-5` or `*` (every layer); PLAN is `dense`, a preset name (`seed`, `all`,
// `balanced`), `checkpoint` (recomputed, inside under `base.policy`), or `checkpoint+dense` /
// `checkpoint+PRESET`. Layers that no item names get `base`; a later item wins where two overlap.
// `make_preset(name)` builds a named preset (with the run's prune ratio, value dtype and site
// overrides). Throws naming the item.
std::vector<LayerPlan> parse_layer_plans(
    std::string_view spec, int num_layers, const LayerPlan& base,
    const std::function<BackRazorPolicy(std::string_view)>& make_preset);
// One line per run of layers with the same plan: "layers 0-3: checkpoint + balanced".
std::string describe_layer_plans(const std::vector<LayerPlan>& plans);

}  // namespace br
