#include "train/memory_svg.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>

#include "core/error.h"
#include "core/text.h"
#include "models/memory_plan.h"

namespace br {

namespace {

// One colour per Site (a qualitative palette; policy sites first, then the always-dense ones).
constexpr const char* kSiteColours[kSavedKinds] = {
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#1f77b4", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#dbdb8d", "#9edae5", "#17becf", "#8c564b", "#7f7f7f", "#bcbd22", "#393b79"};

// The model folder a config.json sits in ("bert-base" for /tmp/bert-base/config.json).
std::string fs_name(const std::string& config) {
  return std::filesystem::path(config).parent_path().filename().string();
}

std::string mib(int64_t bytes) { return fmt::format("{:.1f} MiB", double(bytes) / (1 << 20)); }

std::string esc(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '<') r += "&lt;";
    else if (c == '>') r += "&gt;";
    else if (c == '&') r += "&amp;";
    else r += c;
  }
  return r;
}

// Bytes per (bar, site) of one report: bar 0 = embeddings and head, bar 1 + l = layer l.
std::vector<std::map<Site, int64_t>> bars_of(const MemoryReport& r, int layers) {
  std::vector<std::map<Site, int64_t>> bars(size_t(layers) + 1);
  for (const SiteRecord& s : r.sites) {
    const size_t bar = s.key.layer < 0 ? 0 : size_t(s.key.layer) + 1;
    if (bar < bars.size() && s.stored_bytes > 0) bars[bar][s.key.site] += s.stored_bytes;
  }
  return bars;
}

int layer_count(const MemoryReport& r) {
  int n = int(r.recompute_peak_bytes.size());
  for (const SiteRecord& s : r.sites) n = std::max(n, s.key.layer + 1);
  return n;
}

}  // namespace

// Draws both panels in one pass over the reports; long, but it is one picture's layout.
std::string memory_svg(const std::vector<LabelledReport>& runs, const std::string& title,
                       std::optional<int64_t> budget_bytes) {
  BR_CHECK(!runs.empty(), "memory_svg: nothing to draw");
  const int layers = layer_count(runs[0].report);
  const double bar_w = 14, gap = 4, group_gap = 36, left = 90, top = 60, panel_h = 260;
  const double group_w = (layers + 1) * (bar_w + gap);
  double stride = group_w + group_gap;  // wide enough for each run's label under its bars
  for (const LabelledReport& run : runs) stride = std::max(stride, 7.0 * run.label.size() + 16);
  const double width = std::max(980.0, left + runs.size() * stride + 220);
  const double cat_top = top + panel_h + 110, cat_h = 24, cat_pitch = cat_h + 26;
  const double height = cat_top + runs.size() * cat_pitch + 70;
  int64_t top_max = 1;
  for (const LabelledReport& run : runs) {
    auto bars = bars_of(run.report, layers);
    for (size_t b = 0; b < bars.size(); ++b) {
      int64_t sum = 0;
      for (auto& [site, v] : bars[b]) sum += v;
      if (b > 0 && b - 1 < run.report.recompute_peak_bytes.size())
        sum += run.report.recompute_peak_bytes[b - 1];
      top_max = std::max(top_max, sum);
    }
  }
  std::string o = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\"/>\n<text x=\"{}\" y=\"24\" font-size=\"15\" font-weight=\"bold\">{}</text>\n"
      "<text x=\"{}\" y=\"42\">saved activations per layer and site, as held after the forward "
      "(outlined: a checkpointed layer's recompute peak in backward)</text>\n",
      width, height, left, esc(title), left);
  auto y_of = [&](double bytes) { return top + panel_h - panel_h * bytes / double(top_max); };
  for (int t = 0; t <= 4; ++t) {
    const double v = double(top_max) * t / 4;
    o += fmt::format("<line x1=\"{}\" x2=\"{:.0f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>"
                     "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
                     left - 4, width - 200, y_of(v), y_of(v), left - 8, y_of(v) + 4,
                     mib(int64_t(v)));
  }
  std::map<Site, bool> used;
  for (size_t g = 0; g < runs.size(); ++g) {
    const double x0 = left + g * stride;
    const MemoryReport& r = runs[g].report;
    auto bars = bars_of(r, layers);
    for (size_t b = 0; b < bars.size(); ++b) {
      const double x = x0 + b * (bar_w + gap);
      double acc = 0;
      for (auto& [site, v] : bars[b]) {
        used[site] = true;
        o += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{}\" height=\"{:.2f}\" "
                         "fill=\"{}\"><title>{} {}: {}</title></rect>\n",
                         x, y_of(acc + double(v)), bar_w, y_of(acc) - y_of(acc + double(v)),
                         kSiteColours[int(site)], b == 0 ? "model" : fmt::format("layer{}", b - 1),
                         site_name(site), mib(v));
        acc += double(v);
      }
      if (b > 0 && b - 1 < r.recompute_peak_bytes.size() && r.recompute_peak_bytes[b - 1] > 0) {
        const double v = double(r.recompute_peak_bytes[b - 1]);
        o += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{}\" height=\"{:.2f}\" "
                         "fill=\"none\" stroke=\"#333\" stroke-dasharray=\"3,2\"><title>layer{} "
                         "recompute peak: {}</title></rect>\n",
                         x, y_of(acc + v), bar_w, y_of(acc) - y_of(acc + v), b - 1, mib(int64_t(v)));
      }
      o += fmt::format("<text x=\"{:.1f}\" y=\"{:.0f}\" font-size=\"8\" text-anchor=\"middle\">{}"
                       "</text>\n", x + bar_w / 2, top + panel_h + 12, b == 0 ? "m" : std::to_string(b - 1));
    }
    o += fmt::format("<text x=\"{:.1f}\" y=\"{:.0f}\" font-weight=\"bold\">{}</text>"
                     "<text x=\"{:.1f}\" y=\"{:.0f}\">{} saved</text>\n",
                     x0, top + panel_h + 30, esc(runs[g].label), x0, top + panel_h + 44,
                     mib(r.saved_activation_bytes));
  }
  double ly = top;
  for (auto& [site, u] : used) {
    o += fmt::format("<rect x=\"{:.0f}\" y=\"{:.0f}\" width=\"10\" height=\"10\" fill=\"{}\"/>"
                     "<text x=\"{:.0f}\" y=\"{:.0f}\">{}</text>\n",
                     width - 190, ly, kSiteColours[int(site)], width - 175, ly + 9, site_name(site));
    ly += 14;
  }

  // Bottom panel: peak per category, and the total peak (categories peak at different moments,
  // so their sum can exceed the total).
  int64_t cat_max = budget_bytes.value_or(0);
  for (const LabelledReport& run : runs) {
    int64_t sum = 0;
    for (int c = 0; c < kMemCategories; ++c) sum += run.report.stats.peak[size_t(c)];
    cat_max = std::max({cat_max, sum, run.report.stats.total_peak});
  }
  const double cat_w = width - left - 230;
  auto x_of = [&](double bytes) {
    return left + 60 + cat_w * bytes / double(std::max<int64_t>(cat_max, 1));
  };
  o += fmt::format("<text x=\"{}\" y=\"{:.0f}\" font-size=\"13\" font-weight=\"bold\">peak bytes of "
                   "the step by category (black tick: the step's total peak)</text>\n",
                   left, cat_top - 16);
  const char* cat_colours[kMemCategories] = {"#4e79a7", "#f28e2b", "#e15759", "#59a14f",
                                             "#edc948", "#b07aa1", "#bab0ac"};
  for (size_t g = 0; g < runs.size(); ++g) {
    const MemoryStats& st = runs[g].report.stats;
    const double y = cat_top + g * cat_pitch + 16;
    o += fmt::format("<text x=\"{}\" y=\"{:.0f}\">{}</text>\n", left + 60, y - 4,
                     esc(runs[g].label));
    double acc = 0;
    for (int c = 0; c < kMemCategories; ++c) {
      const double v = double(st.peak[size_t(c)]);
      if (v <= 0) continue;
      o += fmt::format("<rect x=\"{:.1f}\" y=\"{:.0f}\" width=\"{:.2f}\" height=\"{}\" fill=\"{}\">"
                       "<title>{}: {}</title></rect>\n",
                       x_of(acc), y, x_of(acc + v) - x_of(acc), cat_h, cat_colours[c],
                       category_name(MemCategory(c)), mib(int64_t(v)));
      acc += v;
    }
    o += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.0f}\" y2=\"{:.0f}\" stroke=\"black\" "
                     "stroke-width=\"2\"/><text x=\"{:.1f}\" y=\"{:.0f}\">{}</text>\n",
                     x_of(double(st.total_peak)), x_of(double(st.total_peak)), y - 3, y + cat_h + 3,
                     x_of(double(st.total_peak)) + 4, y + cat_h / 2 + 4, mib(st.total_peak));
  }
  const double legend_y = cat_top + runs.size() * cat_pitch + 16;
  for (int c = 0; c < kMemCategories; ++c)
    o += fmt::format("<rect x=\"{:.0f}\" y=\"{:.0f}\" width=\"10\" height=\"10\" fill=\"{}\"/>"
                     "<text x=\"{:.0f}\" y=\"{:.0f}\">{}</text>\n",
                     left + 60 + c * 120, legend_y, cat_colours[c], left + 74 + c * 120,
                     legend_y + 9, category_name(MemCategory(c)));
  if (budget_bytes) {
    const double x = x_of(double(*budget_bytes));
    o += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.0f}\" y2=\"{:.0f}\" stroke=\"red\" "
                     "stroke-dasharray=\"6,3\"/><text x=\"{:.1f}\" y=\"{:.0f}\" fill=\"red\">budget "
                     "{}</text>\n",
                     x, x, cat_top - 8, legend_y - 6, x + 4, cat_top - 2, mib(*budget_bytes));
  }
  o += "</svg>\n";
  return o;
}

CommandArgs args_for_plan(const CommandArgs& a, const std::string& raw) {
  const std::string plan(trim(raw));
  CommandArgs b = a;
  b.backrazor_layers.clear();
  b.backrazor_sites.clear();
  b.gradient_checkpointing = false;
  b.backRazor = false;
  b.max_memory.reset();  // a compared plan is the one it names, not the planner's
  std::string preset = plan;
  if (plan.rfind("checkpoint", 0) == 0) {
    b.gradient_checkpointing = true;
    preset = plan.size() > 10 && plan[10] == '+' ? plan.substr(11) : "dense";
    BR_CHECK(plan.size() == 10 || plan[10] == '+', "--compare: '{}' is not checkpoint or "
             "checkpoint+PRESET", plan);
  }
  if (preset != "dense") {
    try {
      BackRazorPolicy::preset(preset);  // the one list of preset names
    } catch (const Error& e) {
      fail("--compare: '{}': {}", raw, e.what());
    }
    b.backRazor = true;
    b.backrazor_preset = preset;
  }
  return b;
}

std::string write_memory_svg(const CommandArgs& a, const MemoryReport& given) {
  BR_CHECK(a.svg && !a.svg->empty(), "write_memory_svg: no --svg file");
  std::string label = (a.gradient_checkpointing ? "checkpoint+" : "") +
                      (a.backRazor ? backrazor_label(a) : std::string("dense"));
  if (!a.backrazor_layers.empty()) label += " (layers " + a.backrazor_layers + ")";
  std::optional<int64_t> budget;
  if (a.max_memory) {
    label = "plan for --max_memory " + *a.max_memory;
    budget = parse_byte_size(*a.max_memory);
  }
  std::vector<LabelledReport> runs{{label, given}};
  std::string rest = a.compare;
  while (!trim(rest).empty()) {
    const size_t comma = rest.find(',');
    const std::string item(trim(rest.substr(0, comma)));
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    runs.push_back({item, memory_report(args_for_plan(a, item))});
  }
  const std::string title =
      fmt::format("bertrazor memory: {}, batch {}, seq {}", fs_name(config_json_path(a)),
                  given.batch, given.seq);
  std::ofstream out(*a.svg);
  BR_CHECK(out, "--svg: cannot write {}", *a.svg);
  out << memory_svg(runs, title, budget);
  BR_CHECK(out.good(), "--svg: writing {} failed", *a.svg);
  return *a.svg;
}

}  // namespace br
