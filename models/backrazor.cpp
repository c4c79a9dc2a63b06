#include "models/backrazor.h"

#include <charconv>
#include <cstdlib>
#include <vector>

#include <fmt/format.h>

#include "core/text.h"

namespace br {

Site site_from_name(std::string_view name) {
  std::vector<std::string_view> names;
  for (int i = 0; i < kSites; ++i) {
    if (site_name(Site(i)) == name) return Site(i);
    names.push_back(site_name(Site(i)));
  }
  fail("unknown Back Razor site '{}' (sites: {})", name, fmt::join(names, ", "));
}

BackRazorPolicy BackRazorPolicy::preset(std::string_view name, double prune_ratio,
                                        DType value_dtype) {
  BR_CHECK(prune_ratio >= 0.0 && prune_ratio < 1.0, "Back Razor: prune_ratio {} not in [0, 1)",
           prune_ratio);
  BR_CHECK(value_dtype == DType::f16 || value_dtype == DType::f32 || value_dtype == DType::bf16,
           "Back Razor: value dtype {} not supported (fp16, bf16 or fp32)", dtype_name(value_dtype));
  BackRazorPolicy p;
  p.name = std::string(name);
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
  if (name == "balanced") {
    for (auto& s : p.sites) s = sparse;
    p[Site::gelu_input] = SitePolicy{SaveMode::low_precision, value_dtype, prune_ratio};
    p[Site::ffn2_input] = SitePolicy{SaveMode::recompute, DType::f32, 0.0};
    p[Site::pooler_input] = SitePolicy{};
    p[Site::classifier_input] = SitePolicy{};
    return p;
  }
  fail("unknown Back Razor preset '{}' (expected none, seed, all or balanced)", name);
}

namespace {
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> r;
  size_t from = 0;
  while (true) {
    size_t at = s.find(sep, from);
    r.push_back(s.substr(from, at == std::string_view::npos ? std::string_view::npos : at - from));
    if (at == std::string_view::npos) return r;
    from = at + 1;
  }
}

DType value_dtype_from_name(std::string_view item, std::string_view name, bool allow_f32) {
  if (name == "fp16" || name == "f16") return DType::f16;
  if (name == "bf16") return DType::bf16;
  if (allow_f32 && (name == "fp32" || name == "f32")) return DType::f32;
  fail("Back Razor site override '{}': value dtype '{}' is not {}", item, name,
       allow_f32 ? "fp16, bf16 or fp32" : "fp16 or bf16");
}
}  // namespace

void BackRazorPolicy::apply_overrides(std::string_view spec) {
  if (trim(spec).empty()) return;
  if (!name.ends_with("+sites")) name += "+sites";
  for (std::string_view raw : split(spec, ',')) {
    std::string_view item = trim(raw);
    BR_CHECK(!item.empty(), "Back Razor site overrides '{}': empty item", spec);
    size_t eq = item.find('=');
    BR_CHECK(eq != std::string_view::npos,
             "Back Razor site override '{}': expected site=mode[:dtype][:ratio]", item);
    Site site = site_from_name(trim(item.substr(0, eq)));
    std::vector<std::string_view> parts = split(item.substr(eq + 1), ':');
    for (auto& p : parts) p = trim(p);
    SitePolicy& sp = (*this)[site];
    std::string_view mode = parts[0];
    if (mode == "dense") {
      BR_CHECK(parts.size() == 1, "Back Razor site override '{}': dense takes no dtype or ratio",
               item);
      sp = SitePolicy{};
    } else if (mode == "low" || mode == "low_precision") {
      BR_CHECK(parts.size() == 2, "Back Razor site override '{}': expected {}=low:fp16 or low:bf16",
               item, site_name(site));
      sp = SitePolicy{SaveMode::low_precision, value_dtype_from_name(item, parts[1], false), 0.8};
    } else if (mode == "sparse") {
      BR_CHECK(parts.size() <= 3,
               "Back Razor site override '{}': expected {}=sparse[:dtype][:ratio]", item,
               site_name(site));
      SitePolicy next = sp.mode == SaveMode::sparse ? sp : SitePolicy{SaveMode::sparse, DType::f16, 0.8};
      next.mode = SaveMode::sparse;
      for (size_t i = 1; i < parts.size(); ++i) {
        std::string_view p = parts[i];
        if (std::optional<double> r = to_double(p)) {
          BR_CHECK(*r >= 0.0 && *r < 1.0,
                   "Back Razor site override '{}': prune ratio {} not in [0, 1)", item, *r);
          next.prune_ratio = *r;
        } else {
          next.value_dtype = value_dtype_from_name(item, p, true);
        }
      }
      sp = next;
    } else if (mode == "recompute") {
      BR_CHECK(site == Site::ffn2_input,
               "Back Razor site override '{}': only ffn2_input can be recomputed (from the GELU "
               "input, in backward); {} cannot", item, site_name(site));
      BR_CHECK(parts.size() == 1, "Back Razor site override '{}': recompute takes no dtype or ratio",
               item);
      sp = SitePolicy{SaveMode::recompute, DType::f32, 0.0};
    } else {
      fail("Back Razor site override '{}': mode '{}' is not dense, low, sparse or recompute", item,
           mode);
    }
  }
}

bool BackRazorPolicy::any_sparse() const {
  for (const auto& s : sites)
    if (s.mode == SaveMode::sparse) return true;
  return false;
}

bool BackRazorPolicy::exact() const {
  for (const auto& s : sites)
    if (s.mode == SaveMode::sparse || s.mode == SaveMode::low_precision) return false;
  return true;
}

std::string BackRazorPolicy::describe() const {
  std::string r;
  for (int i = 0; i < kSites; ++i) {
    const SitePolicy& s = sites[size_t(i)];
    if (s.mode == SaveMode::dense) continue;
    r += fmt::format("{}: {}", site_name(Site(i)), save_mode_name(s.mode));
    if (s.mode != SaveMode::recompute) r += fmt::format(" {}", dtype_name(s.value_dtype));
    if (s.mode == SaveMode::sparse) r += fmt::format(" prune_ratio {}", s.prune_ratio);
    r += "\n";
  }
  if (r.empty()) return "all sites dense\n";
  if (any_sparse())
    r += skip_padding ? "sparse sites rank real tokens only (padding zeroed)\n"
                      : "sparse sites rank padding too (as the reference)\n";
  return r;
}

std::vector<LayerPlan> parse_layer_plans(
    std::string_view spec, int num_layers, const LayerPlan& base,
    const std::function<BackRazorPolicy(std::string_view)>& make_preset) {
  std::vector<LayerPlan> plans(size_t(num_layers), base);
  if (trim(spec).empty()) return plans;
  for (std::string_view raw : split(spec, ',')) {
    std::string_view item = trim(raw);
    const size_t eq = item.find('=');
    BR_CHECK(!item.empty() && eq != std::string_view::npos,
             "layer plan '{}': expected RANGE=PLAN, e.g. 0-5=checkpoint or 6-11=balanced", item);
    std::string_view range = trim(item.substr(0, eq)), what = trim(item.substr(eq + 1));
    int first = 0, last = num_layers - 1;
    if (range != "*") {
      const size_t dash = range.find('-');
      auto layer = [&](std::string_view t) {
        t = trim(t);
        int v = -1;
        auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        BR_CHECK(ec == std::errc() && end == t.data() + t.size() && v >= 0 && v < num_layers,
                 "layer plan '{}': layer '{}' is not one of 0..{}", item, t, num_layers - 1);
        return v;
      };
      first = layer(range.substr(0, dash));
      last = dash == std::string_view::npos ? first : layer(range.substr(dash + 1));
      BR_CHECK(first <= last, "layer plan '{}': range {}-{} runs backwards", item, first, last);
    }
    LayerPlan plan{base.policy, false};
    if (what.starts_with("checkpoint")) {
      plan.checkpoint = true;
      what.remove_prefix(std::string_view("checkpoint").size());
      BR_CHECK(what.empty() || what.front() == '+',
               "layer plan '{}': expected checkpoint or checkpoint+PRESET", item);
      if (!what.empty()) what.remove_prefix(1);
      what = trim(what);
      BR_CHECK(!what.empty() || item.back() != '+', "layer plan '{}': no preset after '+'", item);
    }
    if (!what.empty()) plan.policy = make_preset(what == "dense" ? "none" : what);
    for (int l = first; l <= last; ++l) plans[size_t(l)] = plan;
  }
  return plans;
}

std::string describe_layer_plans(const std::vector<LayerPlan>& plans) {
  // as the step runs them (models/bert_step.cpp): the last layer is never checkpointed; a
  // checkpoint followed by one keeps its output where its plan says
  auto ckpt = [&](size_t l) { return plans[l].checkpoint && l + 1 < plans.size(); };
  auto kind = [&](size_t l) {
    return !ckpt(l) ? 0 : plans[l].keeps_output() && l + 1 < plans.size() && ckpt(l + 1) ? 2 : 1;
  };
  std::string r;
  for (size_t i = 0; i < plans.size();) {
    size_t j = i;
    while (j + 1 < plans.size() && kind(j + 1) == kind(i) && plans[j + 1].policy == plans[i].policy)
      ++j;
    const LayerPlan& p = plans[i];
    const std::string inside = p.policy.name == "none" ? "dense" : p.policy.name;
    r += i == j ? fmt::format("layer {}: ", i) : fmt::format("layers {}-{}: ", i, j);
    switch (kind(i)) {
      case 0: r += fmt::format("{}\n", inside); break;
      case 1: r += fmt::format("checkpoint (recomputed in backward), inside {}\n", inside); break;
      default:
        r += fmt::format("checkpoint (output kept, recomputed in backward up to the FFN2 input), "
                         "inside {}\n", inside);
    }
    i = j + 1;
  }
  return r;
}

}  // namespace br
