// The memory planner's size parser and its rule (a)-(d) on budgets around each boundary, from the
// byte model alone (tests/train/test_memory_plan_step.cpp checks the byte model against real steps).
#include <catch2/catch.hpp>

#include "core/error.h"
#include "models/memory_plan.h"

using namespace br;

namespace {

// Small layers, many of them, a tiny vocabulary: activations dominate the step, as in real runs.
BertConfig planner_config() {
  BertConfig c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.num_hidden_layers = 12;
  c.num_attention_heads = 2;
  c.intermediate_size = 64;
  c.max_position_embeddings = 64;
  return c;
}

PlannerInput input(int64_t budget) {
  PlannerInput in;
  in.config = planner_config();
  in.batch = 8;
  in.seq = 64;
  in.budget = budget;
  return in;
}

SavePlan uniform(const BertConfig& c, const BackRazorPolicy& p, int checkpointed,
                 bool min_bytes = false) {
  SavePlan s;
  s.policy = p;
  for (int l = 0; l < c.num_hidden_layers; ++l)
    s.layers.push_back(LayerPlan{p, l < checkpointed, min_bytes});
  return s;
}

int64_t peak(const SavePlan& p) { return predict_step_bytes(planner_config(), 8, 64, p).peak; }

}  // namespace

TEST_CASE("memory plan: sizes with decimal and binary units", "[models][memory_plan]") {
  CHECK(parse_byte_size("4096") == 4096);
  CHECK(parse_byte_size("800B") == 800);
  CHECK(parse_byte_size("2KB") == 2000);
  CHECK(parse_byte_size("2KiB") == 2048);
  CHECK(parse_byte_size("1.5 GB") == 1500000000);
  CHECK(parse_byte_size("16GiB") == int64_t(16) << 30);
  CHECK(parse_byte_size("3mib") == 3 << 20);
  CHECK(parse_byte_size("1TB") == 1000000000000);
  CHECK(parse_byte_size(" 7 MB ") == 7000000);
  for (const char* bad : {"", "GiB", "16 GiBs", "1.2.3GB", "-5MB", "0", "0.1B", "12 XB", "1e9",
                          "0x10", "five MB", "."}) {
    INFO("input '" << bad << "'");
    CHECK_THROWS_AS(parse_byte_size(bad), Error);
  }
  CHECK_THROWS_WITH(parse_byte_size("16 GiBs"), Catch::Contains("unknown unit 'GiBs'"));
  CHECK_THROWS_WITH(parse_byte_size("abc"), Catch::Contains("'abc' is not a size"));
}

TEST_CASE("memory plan: the byte model orders plans as the design says", "[models][memory_plan]") {
  const BertConfig c = planner_config();
  const int L = int(c.num_hidden_layers);
  const BackRazorPolicy dense;
  const int64_t d = peak(uniform(c, dense, 0));
  // Each checkpointed layer saves less; checkpointing every layer keeps about an eighth.
  int64_t prev = d;
  for (int k = 1; k <= L; ++k) {
    const int64_t p = peak(uniform(c, dense, k));
    INFO("k " << k);
    // Checkpointing the last layer too saves nothing at its backward, where its whole tape exists
    // either way; its recompute's forward transients may even cost a little more.
    if (k < L) CHECK(p <= prev);
    else CHECK(double(p) <= 1.01 * double(prev));
    if (k <= L / 2) CHECK(p < prev);
    prev = p;
  }
  // The bottom layers are the better ones to checkpoint: their recompute runs last in backward.
  SavePlan top = uniform(c, dense, 0);
  for (int l = L - 3; l < L; ++l) top.layers[size_t(l)].checkpoint = true;
  CHECK(peak(uniform(c, dense, 3)) < peak(top));
  // Balanced inside every checkpointed layer is smaller still.
  CHECK(peak(uniform(c, BackRazorPolicy::preset("balanced"), L)) < peak(uniform(c, dense, L)));
  // Predicted parts add up.
  const StepBytes b = predict_step_bytes(c, 8, 64, uniform(c, dense, 0));
  CHECK(b.parameters == parameter_count(c) * 4);
  CHECK(b.optimizer_state == 2 * b.parameters);
  CHECK(b.gradients >= b.parameters);
  CHECK(b.transient_at_peak() > 0);
  CHECK(b.peak == b.persistent() + b.saved_at_peak + b.transient_at_peak());
}

TEST_CASE("memory plan: rule (a)-(d) around each boundary", "[models][memory_plan]") {
  const BertConfig c = planner_config();
  const int L = int(c.num_hidden_layers);
  const BackRazorPolicy dense;
  const int64_t d = peak(uniform(c, dense, 0));

  // (a) dense fits exactly at its peak, and never at a byte less
  auto a = plan_memory(input(d));
  REQUIRE(a);
  CHECK(a->kind == PlanKind::dense);
  CHECK(a->checkpointed_layers == 0);
  CHECK(a->extra_flops == 0);
  CHECK(a->rejected.empty());

  // (b) one byte less: the cheapest exact plan, FFN2 recompute first (no layer recomputed)
  auto b = plan_memory(input(d - 1));
  REQUIRE(b);
  CHECK(b->kind == PlanKind::exact);
  CHECK(b->checkpointed_layers == 0);
  CHECK(b->ffn2_recompute);
  CHECK(b->damage == 0);
  CHECK(b->bytes.peak <= d - 1);
  CHECK_THAT(b->rejected, Catch::Contains("needs " + std::to_string(d)));

  // (b) budgets between k and k+1 checkpointed layers get the fewest that fit
  BackRazorPolicy ffn2r;
  ffn2r[Site::ffn2_input] = SitePolicy{SaveMode::recompute};
  for (int k : {1, 4, L / 2, L}) {
    const int64_t exact_k = peak(uniform(c, dense, k));
    auto p = plan_memory(input(exact_k));
    REQUIRE(p);
    INFO("k " << k << " budget " << exact_k);
    CHECK(p->kind == PlanKind::exact);
    CHECK(p->bytes.peak <= exact_k);
    // the plan found is no slower than k dense checkpoints, and nothing before it in the order fits
    CHECK(p->checkpointed_layers <= k);
    if (p->checkpointed_layers > 0)
      CHECK(peak(uniform(c, ffn2r, p->checkpointed_layers - 1)) > exact_k);
    if (p->ffn2_recompute) CHECK(peak(uniform(c, dense, p->checkpointed_layers)) > exact_k);
    // Each recomputed layer costs at least its forward but FFN2 (a checkpoint keeping its output
    // skips that), at most its whole forward; the last layer is never recomputed.
    const double fwd = layer_forward_flops(c, 8, 64), ffn2 = 2.0 * 8 * 64 * c.hidden_size * c.intermediate_size;
    const int recomputed = std::min(p->checkpointed_layers, L - 1);
    CHECK(p->extra_flops >= recomputed * (fwd - ffn2));
    CHECK(p->extra_flops <= recomputed * fwd + (p->ffn2_recompute ? double(L) * 8 * 64 * c.intermediate_size : 0));
  }
  // A checkpoint keeping its output: faster, one [B,S,H] tensor more in backward (at most two at
  // the peak: both peaks fall in the second-to-last layer's recompute, where the faster plan also
  // holds that layer's kept LN2 input); the planner takes it where it fits, else the same
  // checkpoints keeping only their inputs.
  {
    const int64_t fast = peak(uniform(c, dense, L)), small = peak(uniform(c, dense, L, true));
    CHECK(fast > small);
    CHECK(fast - small <= 2 * 8 * 64 * c.hidden_size * 4);
    auto f = plan_memory(input(fast));
    REQUIRE(f);
    auto m = plan_memory(input(fast - 1));
    REQUIRE(m);
    CHECK(m->kind == PlanKind::exact);
    CHECK(m->extra_flops >= f->extra_flops);
    CHECK(m->bytes.peak <= fast - 1);
  }

  // (c) below every exact plan: Back Razor inside, the least damaging that fits
  int64_t exact_min = peak(uniform(c, ffn2r, 0));
  for (int k = 1; k <= L; ++k)
    for (bool min_bytes : {false, true})
      exact_min = std::min({exact_min, peak(uniform(c, dense, k, min_bytes)),
                            peak(uniform(c, ffn2r, k, min_bytes))});
  auto e = plan_memory(input(exact_min));
  REQUIRE(e);
  CHECK(e->kind == PlanKind::exact);
  auto r = plan_memory(input(exact_min - 1));
  REQUIRE(r);
  CHECK(r->kind == PlanKind::backrazor);
  CHECK(r->damage > 0);
  CHECK(r->bytes.peak <= exact_min - 1);
  CHECK_THAT(r->rejected, Catch::Contains("no exact plan fits"));
  // A tighter budget never buys a less damaging plan.
  const int64_t tight = r->bytes.peak - 1;
  auto r2 = plan_memory(input(tight));
  if (r2) {
    CHECK(r2->kind == PlanKind::backrazor);
    CHECK(r2->damage >= r->damage);
    CHECK(r2->bytes.peak <= tight);
  }

  // (d) below the smallest plan: nothing, and the smallest is reported
  MemoryPlan smallest;
  auto none = plan_memory(input(b->bytes.persistent() + 1), &smallest);
  CHECK_FALSE(none);
  CHECK(smallest.bytes.peak > b->bytes.persistent() + 1);
  CHECK(smallest.checkpointed_layers == L);
  auto at_smallest = plan_memory(input(smallest.bytes.peak));
  REQUIRE(at_smallest);
  CHECK(at_smallest->bytes.peak <= smallest.bytes.peak);
}

TEST_CASE("memory plan: the largest batch under a budget", "[models][memory_plan]") {
  const BertConfig c = planner_config();
  const BackRazorPolicy dense;
  PlannerInput in = input(0);
  in.padded = false;
  in.budget = predict_step_bytes(c, 8, 64, uniform(c, dense, 0)).peak;
  MemoryPlan plan;
  const int64_t b = find_max_batch(in, 1 << 14, &plan);
  CHECK(b > 8);
  CHECK(b < (1 << 14));  // checkpointing lets a larger batch into dense's budget
  CHECK(plan.bytes.peak <= in.budget);
  in.batch = b + 1;
  CHECK_FALSE(plan_memory(in));
  CHECK(find_max_batch(in, 4) == 4);
  in.budget = 100;
  CHECK(find_max_batch(in, 64) == 0);
  CHECK(peak(uniform(c, dense, int(c.num_hidden_layers))) < peak(uniform(c, dense, 0)) / 2);
}
