#include "models/backrazor.h"

#include <fmt/format.h>

namespace br {

namespace {
constexpr std::array<std::string_view, kSites> kSiteNames = {
    "attn_input", "q",          "k",          "probs",        "v",
    "attn_out_input", "ln1_input", "ffn1_input", "gelu_input", "ffn2_input",
    "ln2_input",  "emb_ln_input", "pooler_input", "classifier_input"};
}  // namespace

std::string_view site_name(Site s) { return kSiteNames[size_t(s)]; }

Site site_from_name(std::string_view name) {
  for (int i = 0; i < kSites; ++i)
    if (kSiteNames[size_t(i)] == name) return Site(i);
  fail("unknown Back Razor site '{}' (sites: {})", name, fmt::join(kSiteNames, ", "));
}

BackRazorPolicy BackRazorPolicy::preset(std::string_view name, double prune_ratio,
                                        DType value_dtype) {
  BR_CHECK(prune_ratio >= 0.0 && prune_ratio < 1.0, "Back Razor: prune_ratio {} not in [0, 1)",
           prune_ratio);
  BR_CHECK(value_dtype == DType::f16 || value_dtype == DType::f32 || value_dtype == DType::bf16,
           "Back Razor: value dtype {} not supported (fp16, bf16 or fp32)", dtype_name(value_dtype));
  BackRazorPolicy p;
  SitePolicy sparse{SaveMode::sparse, value_dtype, prune_ratio};
  if (name == "none" || name == "dense") return p;
  if (name == "seed") {
    for (Site s : {Site::attn_input, Site::q, Site::k, Site::probs, Site::v, Site::attn_out_input,
                   Site::classifier_input})
      p[s] = sparse;
    p[Site::ln1_input] = SitePolicy{SaveMode::sparse, DType::f32, prune_ratio};
    return p;
  }
  if (name == "all") {
    for (auto& s : p.sites) s = sparse;
    return p;
  }
  fail("unknown Back Razor preset '{}' (expected none, seed or all)", name);
}

bool BackRazorPolicy::any_sparse() const {
  for (const auto& s : sites)
    if (s.mode == SaveMode::sparse) return true;
  return false;
}

std::string BackRazorPolicy::describe() const {
  std::string r;
  for (int i = 0; i < kSites; ++i) {
    const SitePolicy& s = sites[size_t(i)];
    if (s.mode == SaveMode::dense) continue;
    r += fmt::format("{}: {} {}", kSiteNames[size_t(i)], save_mode_name(s.mode),
                     dtype_name(s.value_dtype));
    if (s.mode == SaveMode::sparse) r += fmt::format(" prune_ratio {}", s.prune_ratio);
    r += "\n";
  }
  return r.empty() ? "all sites dense\n" : r;
}

}  // namespace br
