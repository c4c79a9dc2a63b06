// bertrazor memory --svg: the picture holds what the reports say (a bar segment per stored site
// and layer, the recompute outline of a checkpointed layer, the budget line), and --compare items
// map to the plans they name.
#include <catch2/catch.hpp>

#include "train/memory_svg.h"

using namespace br;

namespace {

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

MemoryReport report(bool checkpoint) {
  MemoryReport r;
  r.batch = 2;
  r.seq = 4;
  for (int l = 0; l < 2; ++l) {
    SiteRecord s;
    s.key = {l, checkpoint ? Site::layer_input : Site::q};
    s.site = s.key.name();
    s.stored_bytes = 1000;
    r.sites.push_back(s);
  }
  SiteRecord head;
  head.key = {-1, Site::pooler_input};
  head.stored_bytes = 10;
  r.sites.push_back(head);
  r.recompute_peak_bytes = {checkpoint ? 5000 : 0, checkpoint ? 5000 : 0};
  r.saved_activation_bytes = 2010;
  r.stats.peak[size_t(MemCategory::parameters)] = 8000;
  r.stats.peak[size_t(MemCategory::saved_activations)] = 2010;
  r.stats.total_peak = 9000;
  return r;
}

}  // namespace

TEST_CASE("memory svg draws every stored site, recompute peaks and the budget", "[train][memory][svg]") {
  const std::string svg = memory_svg({{"dense", report(false)}, {"checkpoint", report(true)}},
                                     "title <x>", 12000);
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
  CHECK(svg.ends_with("</svg>\n"));
  CHECK(count(svg, "<title>layer0 q: ") == 1);
  CHECK(count(svg, "<title>layer1 layer_input: ") == 1);
  CHECK(count(svg, "<title>model pooler_input: ") == 2);
  CHECK(count(svg, "recompute peak: ") == 2);  // only the checkpointed run's two layers
  CHECK(count(svg, "budget ") == 1);
  CHECK(svg.find("title &lt;x&gt;") != std::string::npos);
  CHECK(svg.find("<title>parameters: ") != std::string::npos);
  CHECK(memory_svg({{"dense", report(false)}}, "t").find("budget") == std::string::npos);
  CHECK_THROWS_WITH(memory_svg({}, "t"), Catch::Contains("nothing to draw"));
}

TEST_CASE("memory --compare items name plans", "[train][memory][svg]") {
  CommandArgs a;
  a.backRazor = true;
  a.backrazor_preset = "all";
  a.backrazor_layers = "0=dense";
  CommandArgs d = args_for_plan(a, "dense");
  CHECK_FALSE(d.backRazor);
  CHECK(d.backrazor_layers.empty());
  CHECK_FALSE(d.gradient_checkpointing);
  CommandArgs b = args_for_plan(a, " balanced ");
  CHECK(b.backRazor);
  CHECK(b.backrazor_preset == "balanced");
  CommandArgs c = args_for_plan(a, "checkpoint");
  CHECK(c.gradient_checkpointing);
  CHECK_FALSE(c.backRazor);
  CommandArgs cb = args_for_plan(a, "checkpoint+seed");
  CHECK(cb.gradient_checkpointing);
  CHECK(cb.backrazor_preset == "seed");
  CHECK_THROWS_WITH(args_for_plan(a, "fancy"), Catch::Contains("--compare: 'fancy'"));
  CHECK_THROWS_WITH(args_for_plan(a, "checkpointy"), Catch::Contains("not checkpoint or"));
}
