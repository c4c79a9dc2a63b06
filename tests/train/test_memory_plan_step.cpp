// The byte model (models/memory_plan.h) against the CPU allocator's measured peak of real training
// steps (measure_training_step, what `bertrazor memory` runs), for every plan kind and several
// batch shapes; then the planner's choice at fractions of the dense peak, run for real, stays
// within its budget; then the --max_memory flag's errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>
#include <omp.h>

#include "core/allocator.h"
#include "core/error.h"
#include "models/memory_plan.h"
#include "train/args.h"
#include "train/memory_report.h"
#include "train/optimizer.h"

using namespace br;

namespace {

BertConfig step_config(int layers) {
  BertConfig c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 2;
  c.intermediate_size = 64;
  c.max_position_embeddings = 64;
  return c;
}

struct Measured {
  int64_t peak = 0;  // the step's total peak, less what the process held before the model
  int64_t saved = 0;
};

// One thread for these tiny steps: on a loaded machine OpenMP's team costs far more than the
// work, and the thread count changes no allocation. Restores the count after.
struct OneThread {
  int saved = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(saved); }
};

Measured measure(const BertConfig& c, int64_t batch, int64_t seq, const SavePlan& plan,
                 int64_t padding = 0) {
  OneThread one;
  const int64_t before = memory_stats(Device::cpu).total_current;
  BertForSequenceClassification model(c, Device::cpu, DType::f32);
  model.init_weights(3);
  model.policy() = plan.policy;
  model.layer_plans() = plan.layers;
  model.set_attention_workspace(plan.attention_workspace);
  model.set_ffn_workspace(plan.ffn_workspace);
  TrainingArgs a;
  a.per_device_train_batch_size = batch;
  a.max_seq_length = seq;
  const MemoryReport r = measure_training_step(model, a, padding);
  return {r.stats.total_peak - before, r.saved_activation_bytes};
}

SavePlan named_plan(const std::string& name, int layers) {
  auto preset = [](std::string_view p) { return BackRazorPolicy::preset(p); };
  SavePlan s;
  const BackRazorPolicy dense;
  if (name == "mixed") {
    s.policy = BackRazorPolicy::preset("balanced");
    s.layers = parse_layer_plans("0=checkpoint+balanced,1=all,2=checkpoint,3=seed", layers,
                                 LayerPlan{dense, false}, preset);
    s.layers[size_t(layers - 1)].policy.apply_overrides("ffn2_input=recompute,gelu_input=low:bf16");
    return s;
  }
  if (name == "checkpoint_min" || name == "checkpoint_ffn2r") {  // only inputs; FFN2 recomputed
    s.policy = dense;
    if (name == "checkpoint_ffn2r") s.policy.apply_overrides("ffn2_input=recompute");
    for (int l = 0; l < layers; ++l)
      s.layers.push_back(LayerPlan{s.policy, true, name == "checkpoint_min"});
    return s;
  }
  const bool ckpt = name.rfind("checkpoint", 0) == 0;
  const std::string p = name == "checkpoint" ? "none" : ckpt ? name.substr(11) : name;
  s.policy = BackRazorPolicy::preset(p);
  for (int l = 0; l < layers; ++l) s.layers.push_back(LayerPlan{s.policy, ckpt});
  return s;
}

}  // namespace

TEST_CASE("memory plan: predicted step peak within 2% of the allocator's", "[train][memory_plan]") {
  const int L = 5;
  const BertConfig c = step_config(L);
  double worst = 0;
  for (auto [B, S] : {std::pair<int64_t, int64_t>{2, 16}, {4, 32}, {3, 64}}) {
    for (const std::string name : {"none", "seed", "all", "balanced", "checkpoint",
                                   "checkpoint_min", "checkpoint_ffn2r", "checkpoint+balanced",
                                   "checkpoint+all", "mixed"}) {
      // the default bounds (one chunk at these sizes), and the materialized attention and the
      // FFN backward one sample (workspace 1) or two samples at a time
      const int64_t two_p = 2 * c.num_attention_heads * S * S * 4, two_f = 2 * S * c.intermediate_size * 4;
      for (auto [ws, fws] : {std::pair{kAttentionWorkspaceBytes, kFfnWorkspaceBytes},
                             std::pair{int64_t(1), int64_t(1)}, std::pair{two_p, two_f}}) {
        SavePlan plan = named_plan(name, L);
        plan.attention_workspace = ws;
        plan.ffn_workspace = fws;
        const StepBytes pred = predict_step_bytes(c, B, S, plan);
        const Measured got = measure(c, B, S, plan);
        const double err = double(pred.peak - got.peak) / double(got.peak);
        worst = std::max(worst, std::fabs(err));
        INFO(fmt::format("plan {} B {} S {} attention workspace {}, FFN workspace {}: predicted {} "
                         "(at {}), measured {}", name, B, S, ws, fws, pred.peak, pred.peak_at, got.peak));
        CHECK(std::fabs(err) <= 0.02);
        CHECK(pred.peak == got.peak);  // the byte model replays the allocations exactly
        CHECK(pred.saved_activations == got.saved);
      }
    }
  }
  WARN(fmt::format("largest byte-model error over the plans: {:.4f}%", 100 * worst));
}

TEST_CASE("memory plan: predicted step peak of a padded batch equals the allocator's",
          "[train][memory_plan]") {
  // Sparse saves then skip padding: the step holds the token mask, and the FFN forms g in f's
  // chunk buffer only where f's chunks are not zeroed at padding first.
  const int L = 4;  // "mixed" plans four layers
  const BertConfig c = step_config(L);
  const int64_t B = 3, S = 32;
  for (const std::string name : {"none", "seed", "all", "balanced", "checkpoint+all", "mixed"}) {
    for (int64_t ws : {kFfnWorkspaceBytes, int64_t(1)}) {
      SavePlan plan = named_plan(name, L);
      plan.attention_workspace = ws;
      plan.ffn_workspace = ws;
      plan.padded = true;
      const StepBytes pred = predict_step_bytes(c, B, S, plan);
      const Measured got = measure(c, B, S, plan, 7);
      INFO(fmt::format("plan {} workspaces {}: predicted {} (at {}), measured {}", name, ws,
                       pred.peak, pred.peak_at, got.peak));
      CHECK(pred.peak == got.peak);
      CHECK(pred.saved_activations == got.saved);
    }
  }
}

TEST_CASE("memory plan: predicted evaluation peak equals the allocator's", "[train][memory_plan]") {
  // A forward without a tape after training (gradients and AdamW state held), whose last layer
  // runs its feed-forward block on the [CLS] rows only.
  OneThread one;
  for (int L : {1, 3})
    for (auto [B, S] : {std::pair<int64_t, int64_t>{2, 16}, {5, 48}}) {
      const BertConfig c = step_config(L);
      const int64_t before = memory_stats(Device::cpu).total_current;
      int64_t peak = 0;
      {
        BertForSequenceClassification model(c, Device::cpu, DType::f32);
        model.init_weights(3);
        TrainingArgs a;
        Optimizer opt(model, adamw_config(a));
        const size_t n = size_t(B * S);
        std::vector<int32_t> ids(n), zeros(n, 0), ones(n, 1), rows(size_t(B), 0);
        for (size_t i = 0; i < n; ++i) ids[i] = int32_t(1 + i % size_t(c.vocab_size - 1));
        BertBatch bb;
        bb.input_ids = Tensor::from_host(ids, {B, S});
        bb.token_type_ids = Tensor::from_host(zeros, {B, S});
        bb.attention_mask = Tensor::from_host(ones, {B, S});
        bb.example_ids = Tensor::from_host(rows, {B});
        bb.labels = Tensor::from_host(rows, {B});
        reset_peak_memory(Device::cpu);
        Tensor logits = model.forward(bb, StepOptions{}, nullptr).logits;
        CHECK(logits.shape() == Shape{B, c.num_labels()});
        peak = memory_stats(Device::cpu).total_peak - before;
      }
      INFO(fmt::format("L {} B {} S {}", L, B, S));
      CHECK(predict_eval_bytes(c, B, S) == peak);
    }
}

TEST_CASE("memory table: a site whose layers differ in shape is marked", "[train][memory_plan]") {
  // A real step: the last layer's feed-forward sites hold its [CLS] rows only...
  const BertConfig c = step_config(3);
  BertForSequenceClassification model(c, Device::cpu, DType::f32);
  model.init_weights(3);
  TrainingArgs a;
  a.per_device_train_batch_size = 2;
  a.max_seq_length = 16;
  const MemoryReport r = measure_training_step(model, a, 0);
  const std::string table = format_memory_table(r, false);
  INFO(table);
  CHECK_THAT(table, Catch::Contains("layer*.gelu_input                3 f32[2, 16, 64] *"));
  // and its attention's query-side sites its [CLS] queries only, but not its keys
  CHECK_THAT(table, Catch::Contains("layer*.k                         3 f32[2, 2, 16, 16]     "));
  CHECK_THAT(table, Catch::Contains("layer*.q                         3 f32[2, 2, 16, 16] *"));
  CHECK_THAT(table, Catch::Contains("* first layer's; not every layer's"));
  const std::string per_layer = format_memory_table(r, true);
  CHECK_THAT(per_layer, Catch::Contains("layer2.gelu_input"));
  CHECK_THAT(per_layer, Catch::Contains("f32[2, 1, 64]"));
  CHECK_THAT(per_layer, !Catch::Contains("not every layer's"));
}

TEST_CASE("memory plan: a real step under the plan stays within the budget",
          "[train][memory_plan]") {
  const int L = 12;
  BertConfig c = step_config(L);
  c.intermediate_size = 128;  // 4 H, as BERT
  const int64_t B = 32, S = 64;
  const int64_t dense = predict_step_bytes(c, B, S, named_plan("none", L)).peak;
  for (double fraction : {0.75, 0.5, 0.3, 0.15}) {
    PlannerInput in;
    in.config = c;
    in.batch = B;
    in.seq = S;
    in.budget = int64_t(double(dense) * fraction);
    in.padded = false;  // measure_training_step's batch has no padding
    MemoryPlan smallest;
    std::optional<MemoryPlan> plan = plan_memory(in, &smallest);
    INFO(fmt::format("{}% of the dense peak {}: budget {}", 100 * fraction, dense, in.budget));
    INFO(fmt::format("smallest plan: {} needs {}", smallest.description, smallest.bytes.peak));
    REQUIRE(plan);
    const Measured got = measure(c, B, S, plan->plan);
    INFO(fmt::format("plan {} ({}): predicted {}, measured {}", plan_kind_name(plan->kind),
                     plan->description, plan->bytes.peak, got.peak));
    CHECK(got.peak <= in.budget);
    CHECK(std::fabs(double(plan->bytes.peak - got.peak)) <= 0.02 * double(got.peak));
    if (fraction >= 0.3) CHECK(plan->kind != PlanKind::backrazor);
  }
}

TEST_CASE("memory plan: --max_memory flags and their errors", "[train][memory_plan][args]") {
  auto args = [&](std::vector<std::string> extra) {
    std::vector<std::string> v = {"--model_name_or_path", "m", "--per_device_train_batch_size", "8"};
    v.insert(v.end(), extra.begin(), extra.end());
    return parse_command_args(Command::memory, v);
  };
  CHECK(*args({"--max_memory", "16GiB"}).max_memory == "16GiB");
  CHECK_THROWS_WITH(args({"--max_memory", "16 gigs"}),
                    Catch::StartsWith("--max_memory: '16 gigs': unknown unit 'gigs'"));
  CHECK_THROWS_WITH(args({"--max_memory", "lots"}), Catch::StartsWith("--max_memory: 'lots' is not a size"));
  CHECK_THROWS_WITH(args({"--max_memory", "1GB", "--gradient_checkpointing"}),
                    Catch::StartsWith("--gradient_checkpointing: conflicts with --max_memory 1GB"));
  CHECK_THROWS_WITH(args({"--max_memory", "1GB", "--backrazor_layers", "0=balanced"}),
                    Catch::StartsWith("--backrazor_layers: '0=balanced' conflicts with --max_memory 1GB"));
  CHECK_THROWS_WITH(args({"--max_memory", "1GB", "--backRazor"}),
                    Catch::StartsWith("--backRazor: conflicts with --max_memory 1GB"));
  CHECK_THROWS_WITH(args({"--plan"}), Catch::StartsWith("--plan: needs --max_memory"));
  // --prune_ratio sets the planner's sparse sites: no "no effect" note
  CHECK(args({"--max_memory", "1GB", "--prune_ratio", "0.9"}).ignored_notes.empty());

  const BertConfig c = step_config(12);
  TrainingArgs a;
  a.per_device_train_batch_size = 8;
  a.max_seq_length = 64;
  const StepBytes d = predict_step_bytes(c, 8, 64, named_plan("none", 12));
  a.max_memory = std::to_string(d.parameters + d.gradients + d.optimizer_state - 1) + "B";
  CHECK_THROWS_WITH(plan_for_args(a, c, true),
                    Catch::StartsWith("--max_memory " + *a.max_memory + ": below the") &&
                        Catch::Contains("parameters"));
  a.max_memory = std::to_string(d.persistent() + 100) + "B";
  CHECK_THROWS_WITH(plan_for_args(a, c, true),
                    Catch::StartsWith("--max_memory " + *a.max_memory + ": no plan fits batch 8 x seq 64") &&
                        Catch::Contains("the smallest step needs") &&
                        Catch::Contains("at --per_device_train_batch_size 1"));
  a.max_memory = std::to_string(d.peak) + "B";
  CHECK(plan_for_args(a, c, true).kind == PlanKind::dense);
}

TEST_CASE("memory plan: --auto_find_batch_size keeps the effective batch", "[train][memory_plan]") {
  const BertConfig c = step_config(6);
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("bertrazor_fit_" + std::to_string(std::rand()) + ".json")).string();
  c.write_json_file(path);
  PlannerInput in;
  in.config = c;
  in.batch = 4;
  in.seq = 64;
  in.budget = 1;
  MemoryPlan smallest4;
  REQUIRE_FALSE(plan_memory(in, &smallest4));
  TrainingArgs a;
  a.config_name = path;
  a.max_seq_length = 64;
  a.per_device_train_batch_size = 8;
  a.gradient_accumulation_steps = 3;
  a.per_device_eval_batch_size = 64;
  a.max_memory = std::to_string(smallest4.bytes.peak) + "B";
  std::string note;
  const TrainingArgs fit = fit_batch_sizes(a, &note);
  // 24 examples per step: 8 does not fit, 6 neither (it needs more than 4), 4 does.
  CHECK(fit.per_device_train_batch_size == 4);
  CHECK(fit.gradient_accumulation_steps == 6);
  CHECK(fit.per_device_eval_batch_size < 64);
  CHECK(predict_eval_bytes(c, fit.per_device_eval_batch_size, 64) <= smallest4.bytes.peak);
  CHECK(predict_eval_bytes(c, fit.per_device_eval_batch_size + 1, 64) > smallest4.bytes.peak);
  CHECK_THAT(note, Catch::Contains("per-device train batch 4 x 6 accumulation steps (asked 8 x 3)"));
  a.max_memory = "1KB";
  CHECK_THROWS_WITH(fit_batch_sizes(a, &note), Catch::StartsWith("--max_memory 1KB: below"));
  std::filesystem::remove(path);
}
