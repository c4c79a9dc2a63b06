#include "train/memory_report.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <random>

#include <fmt/format.h>

#include "core/text.h"
#include "models/bert_io.h"
#include "models/model_path.h"
#include "train/glue.h"
#include "train/optimizer.h"
#include "train/step.h"

namespace br {

namespace fs = std::filesystem;

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// "layer3.q" -> ("q", 3); "emb_ln_input" -> ("emb_ln_input", -1)
std::pair<std::string, int> split_key(const std::string& key) {
  if (key.rfind("layer", 0) == 0) {
    size_t dot = key.find('.');
    return {key.substr(dot + 1), int(parse_int(key.substr(5, dot - 5), "tape key " + key))};
  }
  return {key, -1};
}
}  // namespace

BertForSequenceClassification memory_model(const CommandArgs& a) {
  BertConfig c = BertConfig::from_json_file(config_json_path(a));
  if (a.num_labels) c.set_num_labels(*a.num_labels);
  BertForSequenceClassification model(c, resolved_device(a), DType::f32);
  const fs::path weights = a.model_name_or_path.empty()
                               ? fs::path()
                               : fs::path(resolve_model_path(a.model_name_or_path)) / "model.safetensors";
  if (!weights.empty() && fs::exists(weights))
    load_safetensors_weights(model, weights.string(), uint64_t(a.seed));
  else
    model.init_weights(uint64_t(a.seed));
  configure_for_training(model, a);
  return model;
}

MemoryReport measure_training_step(BertForSequenceClassification& model, const TrainingArgs& a,
                                   int64_t padding) {
  const BertConfig& c = model.config();
  const Device dev = model.device();
  const int64_t batch = a.per_device_train_batch_size, seq = a.max_seq_length;
  BR_CHECK(seq <= c.max_position_embeddings, "memory: max_seq_length {} exceeds the model's {}",
           seq, c.max_position_embeddings);
  std::mt19937_64 rng(uint64_t(a.seed));
  const size_t tokens = static_cast<size_t>(batch * seq), rows = static_cast<size_t>(batch);
  std::vector<int32_t> ids(tokens), tt(tokens, 0), am(tokens, 1), labels(rows), ex(rows);
  for (auto& x : ids) x = int32_t(1 + rng() % uint64_t(c.vocab_size - 1));
  BR_CHECK(padding >= 0 && padding < seq, "memory: {} padding tokens in a sequence of {}", padding,
           seq);
  for (int64_t b = 1; b < batch; ++b)
    for (int64_t s = seq - padding; s < seq; ++s) {
      ids[size_t(b * seq + s)] = int32_t(std::max<int64_t>(0, c.pad_token_id));
      am[size_t(b * seq + s)] = 0;
    }
  for (int64_t b = 0; b < batch; ++b) {
    labels[size_t(b)] = int32_t(rng() % uint64_t(std::max<int64_t>(1, c.num_labels())));
    ex[size_t(b)] = int32_t(b);
  }
  BertBatch bb;
  bb.input_ids = Tensor::from_host(ids, {batch, seq}, dev);
  bb.token_type_ids = Tensor::from_host(tt, {batch, seq}, dev);
  bb.attention_mask = Tensor::from_host(am, {batch, seq}, dev);
  bb.example_ids = Tensor::from_host(ex, {batch}, dev);
  if (c.num_labels() == 1) {
    std::vector<float> y(size_t(batch), 1.0f);
    bb.labels = Tensor::from_host(y, {batch}, dev);
  } else {
    bb.labels = Tensor::from_host(labels, {batch}, dev);
  }

  Optimizer opt(model, adamw_config(a));  // its state exists before the step, as in training
  cuda_synchronize();
  reset_peak_memory(dev);

  MemoryReport r;
  r.batch = batch;
  r.seq = seq;
  Tape tape(dev);
  model.grads().zero_();
  auto t0 = std::chrono::steady_clock::now();
  StepResult step = train_step(model, bb, train_step_options(a, 0), tape);
  cuda_synchronize();
  r.forward_seconds = step.forward_seconds;
  r.backward_seconds = seconds_since(t0) - step.forward_seconds;
  r.saved_activation_bytes = step.saved_bytes;
  r.recompute_peak_bytes = step.backward.recompute_peak_bytes;
  r.sites = tape.records();
  for (const SiteRecord& s : r.sites) r.dense_activation_bytes += s.dense_bytes;
  // A checkpointed layer's sites are recorded by its recompute, not by the forward.
  for (int64_t b : step.backward.recompute_dense_bytes) r.dense_activation_bytes += b;

  t0 = std::chrono::steady_clock::now();
  opt.step(0.0);  // measure the update without changing the model
  cuda_synchronize();
  r.optimizer_seconds = seconds_since(t0);
  r.stats = memory_stats(dev);
  return r;
}

MemoryReport memory_report(const CommandArgs& a) {
  BertForSequenceClassification model = memory_model(a);
  return measure_training_step(model, a);
}

std::string format_memory_table(const MemoryReport& r, bool per_layer) {
  struct Row {
    std::string shape, policy;
    int64_t count = 0, dense = 0, stored = 0;
  };
  std::vector<std::string> order;
  std::map<std::string, Row> rows;
  bool mixed = false;
  for (const SiteRecord& s : r.sites) {
    auto [site, layer] = split_key(s.site);
    std::string name = per_layer || layer < 0 ? s.site : "layer*." + site;
    if (!rows.count(name)) order.push_back(name);
    Row& row = rows[name];
    const std::string shape = fmt::format("{}{}", dtype_name(s.dtype), shape_str(s.shape));
    const std::string policy =
        s.policy.mode == SaveMode::sparse
            ? fmt::format("sparse {} p={}", dtype_name(s.policy.value_dtype), s.policy.prune_ratio)
        : s.policy.mode == SaveMode::low_precision
            ? fmt::format("dense {}", dtype_name(s.policy.value_dtype))
        : s.policy.mode == SaveMode::recompute ? "recomputed"
                                                : "dense";
    // The first layer's shape and policy; a '*' where another layer's differs (the last layer's
    // feed-forward sites hold its [CLS] rows only; per-layer plans): --per_layer shows each.
    if (row.count == 0) {
      row.shape = shape;
      row.policy = policy;
    } else {
      if (shape != row.shape && row.shape.back() != '*') row.shape += " *";
      if (policy != row.policy && row.policy.back() != '*') row.policy += " *";
    }
    mixed = mixed || row.shape.back() == '*' || row.policy.back() == '*';
    row.count++;
    row.dense += s.dense_bytes;
    row.stored += s.stored_bytes;
  }
  std::string out = fmt::format("{:<28} {:>5} {:<22} {:<22} {:>15} {:>15} {:>7}\n", "site", "count",
                                "shape", "policy", "dense bytes", "stored bytes", "ratio");
  for (const std::string& name : order) {
    const Row& row = rows[name];
    out += fmt::format("{:<28} {:>5} {:<22} {:<22} {:>15} {:>15} {:>7.4f}\n", name, row.count,
                       row.shape, row.policy, row.dense, row.stored,
                       row.dense ? double(row.stored) / double(row.dense) : 0.0);
  }
  out += fmt::format("{:<28} {:>5} {:<22} {:<22} {:>15} {:>15} {:>7.4f}\n", "total", r.sites.size(),
                     "", "", r.dense_activation_bytes, r.saved_activation_bytes,
                     r.dense_activation_bytes
                         ? double(r.saved_activation_bytes) / double(r.dense_activation_bytes)
                         : 0.0);
  if (mixed)
    out += "* first layer's; not every layer's (the last layer's feed-forward sites hold its [CLS] "
           "rows only; --per_layer lists each)\n";
  for (size_t l = 0; l < r.recompute_peak_bytes.size(); ++l) {
    if (r.recompute_peak_bytes[l] == 0) continue;
    int64_t kept = 0;
    for (const SiteRecord& s : r.sites)
      if (s.key == TapeKey{int(l), Site::layer_input}) kept = s.stored_bytes;
    out += fmt::format("layer{} checkpoint: keeps {} bytes until backward; its recompute holds at "
                       "most {} bytes\n",
                       l, kept, r.recompute_peak_bytes[l]);
  }
  out += "\npeak bytes by category during the step:\n";
  for (int c = 0; c < kMemCategories; ++c)
    out += fmt::format("  {:<18} {:>15}\n", category_name(MemCategory(c)), r.stats.peak[size_t(c)]);
  out += fmt::format("  {:<18} {:>15}\n", "total peak", r.stats.total_peak);
  out += fmt::format("step time: forward {:.3f} s, backward {:.3f} s, optimizer {:.3f} s\n",
                     r.forward_seconds, r.backward_seconds, r.optimizer_seconds);
  return out;
}

nlohmann::json memory_report_json(const MemoryReport& r) {
  nlohmann::json j;
  j["batch"] = r.batch;
  j["seq"] = r.seq;
  j["saved_activation_bytes"] = r.saved_activation_bytes;
  j["dense_activation_bytes"] = r.dense_activation_bytes;
  j["peak_bytes"] = r.stats.total_peak;
  nlohmann::json peaks;
  for (int c = 0; c < kMemCategories; ++c)
    peaks[std::string(category_name(MemCategory(c)))] = r.stats.peak[size_t(c)];
  j["peak_bytes_by_category"] = peaks;
  j["forward_seconds"] = r.forward_seconds;
  j["backward_seconds"] = r.backward_seconds;
  j["optimizer_seconds"] = r.optimizer_seconds;
  nlohmann::json sites = nlohmann::json::array();
  for (const SiteRecord& s : r.sites) {
    sites.push_back({{"site", s.site},
                     {"shape", s.shape},
                     {"dtype", std::string(dtype_name(s.dtype))},
                     {"policy", std::string(save_mode_name(s.policy.mode))},
                     {"value_dtype", std::string(dtype_name(s.policy.value_dtype))},
                     {"prune_ratio", s.policy.prune_ratio},
                     {"kept_per_sample", s.kept_per_sample},
                     {"dense_bytes", s.dense_bytes},
                     {"stored_bytes", s.stored_bytes}});
  }
  j["sites"] = sites;
  j["recompute_peak_bytes"] = r.recompute_peak_bytes;
  return j;
}

// ---- the planner ----

namespace {
// A plan description on one line: its lines joined with "; ".
std::string one_line(std::string text) {
  for (size_t at; (at = text.find('\n')) != std::string::npos;) text.replace(at, 1, "; ");
  return text;
}
}  // namespace

PlannerInput planner_input(const TrainingArgs& a, const BertConfig& c, bool padded) {
  BR_CHECK(a.max_memory, "planner_input: no --max_memory");
  PlannerInput in;
  in.config = c;
  in.batch = a.per_device_train_batch_size;
  in.seq = a.max_seq_length;
  in.budget = parse_byte_size(*a.max_memory);
  in.prune_ratio = a.prune_ratio;
  in.value_dtype = a.backrazor_dtype == "fp32" ? DType::f32 : DType::f16;
  in.skip_padding = a.backrazor_skip_padding;
  in.padded = padded;
  return in;
}

MemoryPlan plan_for_args(const TrainingArgs& a, const BertConfig& c, bool padded) {
  PlannerInput in = planner_input(a, c, padded);
  const std::string& flag = *a.max_memory;
  SavePlan all_dense;
  all_dense.layers.resize(size_t(c.num_hidden_layers));
  const StepBytes dense = predict_step_bytes(c, 1, 1, all_dense);
  const int64_t fixed = dense.parameters + dense.gradients + dense.optimizer_state;
  if (in.budget < fixed)
    fail("--max_memory {}: below the {} the model's parameters ({}), gradients ({}) and AdamW "
         "state ({}) hold before any activation", flag, format_bytes(fixed), dense.parameters,
         dense.gradients, dense.optimizer_state);
  MemoryPlan smallest;
  std::optional<MemoryPlan> plan = plan_memory(in, &smallest);
  if (plan) return *plan;
  std::string at1;
  if (in.batch > 1) {
    PlannerInput one = in;
    one.batch = 1;
    MemoryPlan small1;
    std::optional<MemoryPlan> p1 = plan_memory(one, &small1);
    const MemoryPlan& s1 = p1 ? *p1 : small1;
    at1 = fmt::format("; at --per_device_train_batch_size 1 {} {} ({})",
                      p1 ? "it fits with" : "the smallest is", format_bytes(s1.bytes.peak),
                      one_line(s1.description));
  }
  const std::string text = one_line(smallest.description);
  fail("--max_memory {}: no plan fits batch {} x seq {}: the smallest step needs {} ({}){}", flag,
       in.batch, in.seq, format_bytes(smallest.bytes.peak), text, at1);
}

void check_memory_budget(const TrainingArgs& a) {
  if (!a.max_memory) return;
  BertConfig c = BertConfig::from_json_file(config_json_path(a));
  if (a.task_name) c.set_num_labels(glue_task(*a.task_name).num_labels());
  plan_for_args(a, c, true);
}

TrainingArgs fit_batch_sizes(const TrainingArgs& a, std::string* note) {
  BR_CHECK(a.max_memory, "fit_batch_sizes: no --max_memory");
  BertConfig c = BertConfig::from_json_file(config_json_path(a));
  if (a.task_name) c.set_num_labels(glue_task(*a.task_name).num_labels());
  TrainingArgs out = a;
  const int64_t effective = a.per_device_train_batch_size * a.gradient_accumulation_steps;
  PlannerInput in = planner_input(a, c, true);
  int64_t b = a.per_device_train_batch_size;
  for (; b >= 1; --b) {
    if (effective % b) continue;
    in.batch = b;
    if (plan_memory(in)) break;
  }
  if (b < 1) {  // not even batch 1: plan_for_args says why, with the smallest budget
    TrainingArgs one = a;
    one.per_device_train_batch_size = 1;
    plan_for_args(one, c, true);
  }
  out.per_device_train_batch_size = b;
  out.gradient_accumulation_steps = effective / b;
  int64_t e = a.per_device_eval_batch_size;
  while (e > 1 && predict_eval_bytes(c, e, a.max_seq_length) > in.budget) --e;
  out.per_device_eval_batch_size = e;
  if (note)
    *note = fmt::format("--auto_find_batch_size under --max_memory {}: per-device train batch {} "
                        "x {} accumulation steps (asked {} x {}), eval batch {} (asked {})",
                        *a.max_memory, b, out.gradient_accumulation_steps,
                        a.per_device_train_batch_size, a.gradient_accumulation_steps, e,
                        a.per_device_eval_batch_size);
  return out;
}

void apply_memory_plan(BertForSequenceClassification& model, const MemoryPlan& plan) {
  model.policy() = plan.plan.policy;
  model.set_gradient_checkpointing(false);
  model.layer_plans() = plan.plan.layers;
}

std::vector<MaxBatchRow> find_max_batches(const TrainingArgs& a, const BertConfig& c) {
  const PlannerInput in = planner_input(a, c, true);
  const int L = int(c.num_hidden_layers);
  BackRazorPolicy balanced = BackRazorPolicy::preset("balanced", in.prune_ratio, in.value_dtype);
  balanced.skip_padding = in.skip_padding;
  auto uniform = [&](const BackRazorPolicy& p, bool ckpt) {
    SavePlan s{p, std::vector<LayerPlan>(size_t(L), LayerPlan{p, ckpt}), in.padded && p.skip_padding};
    return s;
  };
  const std::pair<std::string, SavePlan> kinds[] = {
      {"dense", uniform(BackRazorPolicy{}, false)},
      {"checkpoint", uniform(BackRazorPolicy{}, true)},
      {"balanced", uniform(balanced, false)},
      {"checkpoint+balanced", uniform(balanced, true)}};
  std::vector<MaxBatchRow> rows;
  for (const auto& [name, plan] : kinds) {
    MaxBatchRow r{name};
    int64_t lo = 0, hi = in.batch;  // the peak grows with the batch
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo + 1) / 2;
      if (predict_step_bytes(c, mid, in.seq, plan).peak <= in.budget) lo = mid;
      else hi = mid - 1;
    }
    r.batch = lo;
    r.peak = lo ? predict_step_bytes(c, lo, in.seq, plan).peak : 0;
    rows.push_back(r);
  }
  MemoryPlan best;
  MaxBatchRow r{"planner"};
  r.batch = find_max_batch(in, in.batch, &best);
  if (r.batch) {
    r.plan = "planner: " + one_line(best.description);
    r.peak = best.bytes.peak;
  }
  rows.push_back(r);
  return rows;
}

std::string format_memory_plan(const MemoryPlan& p) {
  const StepBytes& b = p.bytes;
  std::string out = fmt::format("memory plan for a budget of {}: {}\n", format_bytes(p.budget),
                                plan_kind_name(p.kind));
  for (size_t from = 0, at; from < p.description.size(); from = at + 1) {
    at = p.description.find('\n', from);
    if (at == std::string::npos) at = p.description.size();
    out += "  " + p.description.substr(from, at - from) + "\n";
  }
  out += "predicted bytes:\n";
  const std::pair<const char*, int64_t> rows[] = {
      {"parameters", b.parameters},           {"gradients", b.gradients},
      {"optimizer_state", b.optimizer_state}, {"inputs", b.inputs},
      {"saved_activations", b.saved_activations}, {"recompute_peak", b.recompute_peak},
      {"saved_at_peak", b.saved_at_peak},     {"transient_at_peak", b.transient_at_peak()},
      {"total peak", b.peak}};
  for (const auto& [name, v] : rows) out += fmt::format("  {:<18} {:>15}\n", name, v);
  out += fmt::format("  peak at            {}\n", b.peak_at);
  out += fmt::format("extra compute: {:.3g} FLOPs ({:.1f}% of the dense step's {:.3g})\n",
                     p.extra_flops, 100 * p.extra_flops / p.dense_step_flops, p.dense_step_flops);
  if (p.kind == PlanKind::backrazor)
    out += fmt::format("prior gradient damage (sum of single-site relative errors): {:.4g}\n", p.damage);
  if (!p.rejected.empty()) {
    out += "why not cheaper: " + one_line(p.rejected) + "\n";
  }
  return out;
}

nlohmann::json memory_plan_json(const MemoryPlan& p) {
  const StepBytes& b = p.bytes;
  nlohmann::json layers = nlohmann::json::array();
  const std::vector<LayerPlan>& ls = p.plan.layers;
  for (size_t i = 0; i < ls.size(); ++i) {
    // as the step runs it (models/bert_step.cpp): the last layer is never a checkpoint, and one
    // keeps its output where its plan says and the next layer is a checkpoint too
    const auto ckpt = [&](size_t j) { return j + 1 < ls.size() && ls[j].checkpoint; };
    const bool kept = ckpt(i) && ckpt(i + 1) && ls[i].keeps_output();
    layers.push_back({{"checkpoint", ls[i].checkpoint}, {"output_kept", kept},
                      {"policy", ls[i].policy.describe()}});
  }
  return {{"budget_bytes", p.budget},
          {"kind", std::string(plan_kind_name(p.kind))},
          {"description", p.description},
          {"checkpointed_layers", p.checkpointed_layers},
          {"ffn2_recompute", p.ffn2_recompute},
          {"layers", layers},
          {"head_policy", p.plan.policy.describe()},
          {"predicted_bytes",
           {{"parameters", b.parameters},
            {"gradients", b.gradients},
            {"optimizer_state", b.optimizer_state},
            {"inputs", b.inputs},
            {"saved_activations", b.saved_activations},
            {"recompute_peak", b.recompute_peak},
            {"saved_at_peak", b.saved_at_peak},
            {"transient_at_peak", b.transient_at_peak()},
            {"peak", b.peak},
            {"peak_at", b.peak_at}}},
          {"extra_flops", p.extra_flops},
          {"dense_step_flops", p.dense_step_flops},
          {"prior_damage", p.damage},
          {"rejected", p.rejected}};
}

}  // namespace br
