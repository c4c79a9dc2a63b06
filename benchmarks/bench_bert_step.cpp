// End-to-end training step of BertForSequenceClassification: forward (dropout on, activations
// saved on the tape under a Back Razor preset) + cross-entropy + backward + AdamW, on synthetic
// full-length batches and random weights. Prints the median step time, tokens/s, model FLOPs per
// step and achieved TFLOP/s, peak memory by category and the saved-activation bytes of the tape;
// or, with --find_max_batch, the largest batch whose step fits under --budget_bytes.
//
// Model FLOPs per step (docs/GPU.md): 6·P·T + 12·L·B·S²·H, with P the non-embedding parameters
// (everything but the word, position and token-type tables), T = B·S tokens, L layers, H hidden.
// The first term is the forward (2·P·T) and backward (4·P·T) of every weight matrix; the second
// is Q·Kᵀ and P·V forward (4·B·S²·H per layer) and their backward (8·B·S²·H).
//
// Parameters are f32; compute is f32 (tf32 is not used) or, with --bf16, bf16 with fp32 master
// weights on CUDA (BertForSequenceClassification::set_compute_dtype), and on the CPU fp32 with
// every product's operands rounded to bf16, fp32 accumulation (set_cpu_bf16_matmul).
// --attention picks the attention kernel (auto: fused flash on CUDA when the probs site is dense
// and the head dim is 64).
//
// --eval: forward only, as evaluation runs it (no dropout, no tape: the last layer forms its [CLS]
// rows only); the step time is that forward's, the model FLOPs a third of a training step's.
//
// --profile: after the usual report, each op's share of the timed steps, per phase (zero_grad,
// forward, loss, backward, optimizer): exclusive wall time per step, calls per step and time per
// call of every kernels/ dispatcher entry point (kernels/profile.h), and the time of the phase
// spent outside them (tape, allocation, views). On CUDA the times are launch times unless
// CUDA_LAUNCH_BLOCKING=1.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/device.h"
#include "core/error.h"
#include "models/tape.h"
#include "kernels/adamw.h"
#include "kernels/gemm.h"
#include "kernels/profile.h"
#include "models/bert.h"
#include "models/config.h"

using namespace br;

namespace {

struct Args {
  std::string config;  // empty: bert-base-uncased defaults (BertConfig's defaults)
  int64_t batch = 8;
  int64_t seq = 128;
  std::string preset = "none";
  double prune_ratio = 0.8;
  Device device = Device::cpu;
  int steps = 10;
  int warmup = 2;
  int64_t budget_bytes = 0;
  bool json = false;
  bool find_max_batch = false;
  int64_t max_batch = 4096;
  int num_labels = 2;
  uint64_t seed = 42;
  bool bf16 = false;
  bool profile = false;
  bool checkpoint = false;  // --gradient_checkpointing: every layer recomputed in backward
  bool eval = false;        // --eval: the forward of evaluation alone
  AttentionKernel attention = AttentionKernel::automatic;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "bench_bert_step: %s\n"
               "usage: bench_bert_step [--config config.json] [--batch B] [--seq S]\n"
               "  [--preset none|seed|all|balanced] [--prune_ratio R] [--device cpu|cuda] [--steps N]\n"
               "  [--warmup N] [--budget_bytes BYTES] [--json] [--find_max_batch [--max_batch B]]\n"
               "  [--num_labels C] [--seed N] [--bf16] [--attention auto|materialized|flash] [--profile]\n"
               "  [--gradient_checkpointing] [--eval]\n",
               why.c_str());
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage(k + " needs a value");
      return argv[++i];
    };
    auto num = [&]() -> int64_t {
      std::string v = val();
      char* end = nullptr;
      long long x = std::strtoll(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0') usage(fmt::format("{}: not an integer: '{}'", k, v));
      return int64_t(x);
    };
    if (k == "--config") a.config = val();
    else if (k == "--batch") a.batch = num();
    else if (k == "--seq") a.seq = num();
    else if (k == "--preset") a.preset = val();
    else if (k == "--prune_ratio") a.prune_ratio = std::stod(val());
    else if (k == "--device") a.device = device_from_name(val());
    else if (k == "--steps") a.steps = int(num());
    else if (k == "--warmup") a.warmup = int(num());
    else if (k == "--budget_bytes") a.budget_bytes = num();
    else if (k == "--json") a.json = true;
    else if (k == "--find_max_batch") a.find_max_batch = true;
    else if (k == "--max_batch") a.max_batch = num();
    else if (k == "--num_labels") a.num_labels = int(num());
    else if (k == "--seed") a.seed = uint64_t(num());
    else if (k == "--bf16") a.bf16 = true;
    else if (k == "--profile") a.profile = true;
    else if (k == "--gradient_checkpointing") a.checkpoint = true;
    else if (k == "--eval") a.eval = true;
    else if (k == "--attention") {
      std::string v = val();
      try {
        a.attention = attention_kernel_from_name(v);
      } catch (const Error&) {
        usage("--attention must be auto, materialized or flash, got " + v);
      }
    }
    else if (k == "--help" || k == "-h") usage("help");
    else usage("unknown argument " + k);
  }
  if (a.batch < 1 || a.seq < 1 || a.steps < 1 || a.warmup < 0 || a.max_batch < 1 || a.num_labels < 1)
    usage("--batch, --seq, --steps, --max_batch, --num_labels must be >= 1 and --warmup >= 0");
  if (a.eval && (a.find_max_batch || a.checkpoint || a.preset != "none"))
    usage("--eval times the forward of evaluation, which saves nothing: no --find_max_batch, "
          "--gradient_checkpointing or --preset");
  try {
    BackRazorPolicy::preset(a.preset);  // the one list of preset names
  } catch (const Error& e) {
    usage(std::string("--preset: ") + e.what());
  }
  return a;
}

// P: parameters outside the word, position and token-type embedding tables.
int64_t non_embedding_params(const BertWeights& w) {
  int64_t n = 0;
  for (const Tensor& t : w.all()) n += t.numel();
  return n - w.word_emb.numel() - w.pos_emb.numel() - w.type_emb.numel();
}

// 6·P·B·S + 12·L·B·S²·H (see the header comment).
double model_flops(const BertConfig& c, int64_t P, int64_t B, int64_t S) {
  return 6.0 * double(P) * double(B * S) +
         12.0 * double(c.num_hidden_layers) * double(B) * double(S) * double(S) * double(c.hidden_size);
}

// A full-length synthetic batch: ids uniform in [1, V), segment A then B, no padding, labels
// uniform in [0, C). Drawn once per step index from mt19937 so every run sees the same batches.
BertBatch synthetic_batch(const BertConfig& c, int64_t B, int64_t S, Device d, uint32_t step) {
  std::mt19937 rng(1000u + step);
  std::uniform_int_distribution<int32_t> tok(1, int32_t(c.vocab_size - 1));
  std::uniform_int_distribution<int32_t> lab(0, int32_t(c.num_labels() - 1));
  const size_t n = size_t(B * S);
  std::vector<int32_t> ids(n), tt(n), am(n, 1), labels(static_cast<size_t>(B)), ex(static_cast<size_t>(B));
  const int64_t split = S / 2;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t s = 0; s < S; ++s) {
      ids[size_t(b * S + s)] = tok(rng);
      tt[size_t(b * S + s)] = (s >= split && c.type_vocab_size > 1) ? 1 : 0;
    }
    labels[size_t(b)] = lab(rng);
    ex[size_t(b)] = int32_t(int64_t(step) * B + b);
  }
  BertBatch batch;
  batch.input_ids = Tensor::from_host(ids, {B, S}, d);
  batch.token_type_ids = Tensor::from_host(tt, {B, S}, d);
  batch.attention_mask = Tensor::from_host(am, {B, S}, d);
  batch.labels = Tensor::from_host(labels, {B}, d);
  batch.example_ids = Tensor::from_host(ex, {B}, d);
  return batch;
}

// Parameters, gradients, AdamW moments and the per-tensor decay flags (no decay for biases and
// LayerNorm weights, as run_glue does).
struct Trainer {
  BertForSequenceClassification model;
  BertWeights m, v;
  std::vector<Tensor> params, grads, ms, vs;
  std::vector<bool> decay;
  AdamWConfig adam{2e-5f, 0.9f, 0.999f, 1e-8f, 0.01f, false};
  int64_t step = 0;
  // Wall seconds of each phase summed over the profiled steps (phase_names order).
  static constexpr const char* phase_names[] = {"zero_grad", "forward", "loss", "backward", "optimizer"};
  double phase_seconds[5] = {};

  Trainer(const BertConfig& c, Device d, const Args& a) : model(c, d, DType::f32) {
    model.init_weights(a.seed);
    model.policy() = BackRazorPolicy::preset(a.preset, a.prune_ratio, DType::f16);
    // CPU --bf16: fp32 activations, products on bf16-rounded operands (as `train --bf16`)
    if (a.bf16 && d == Device::cuda) model.set_compute_dtype(DType::bf16);
    if (d == Device::cpu) set_cpu_bf16_matmul(a.bf16);
    model.set_attention_kernel(a.attention);
    model.set_gradient_checkpointing(a.checkpoint);
    m = BertWeights::allocate(c, DType::f32, d, MemCategory::optimizer_state);
    v = BertWeights::allocate(c, DType::f32, d, MemCategory::optimizer_state);
    for (auto& [name, t] : model.params().named()) {
      params.push_back(t);
      decay.push_back(name.find(".bias") == std::string::npos &&
                      name.find("LayerNorm") == std::string::npos);
    }
    grads = model.grads().all();
    ms = m.all();
    vs = v.all();
  }

  // The forward of evaluation (no dropout, nothing saved), timed as the forward phase.
  void run_eval(const BertBatch& batch) {
    auto t = std::chrono::steady_clock::now();
    if (profile::enabled()) profile::set_phase(phase_names[1]);
    Tensor logits = model.forward(batch, StepOptions{}, nullptr).logits;
    cuda_synchronize();
    if (profile::enabled())
      phase_seconds[1] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }

  // One optimizer step; returns the tape's peak bytes (saved activations).
  int64_t run(const BertBatch& batch, Tape& tape) {
    auto t = std::chrono::steady_clock::now();
    // Closes phase i: adds its wall time when profiling and names the next phase.
    auto next_phase = [&](int i) {
      if (!profile::enabled()) return;
      cuda_synchronize();
      const auto now = std::chrono::steady_clock::now();
      if (i >= 0) phase_seconds[i] += std::chrono::duration<double>(now - t).count();
      t = now;
      if (i + 1 < 5) profile::set_phase(phase_names[i + 1]);
    };
    next_phase(-1);
    tape.clear();
    StepOptions opt{true, 42, uint32_t(step), true};
    {
      BR_PROFILE("model.zero_grad");
      model.zero_grad();
    }
    next_phase(0);
    ForwardResult fwd = model.forward(batch, opt, &tape);
    Tensor logits = fwd.logits;
    next_phase(1);
    Tensor dlogits = model.loss_backward(logits, batch.labels, 1.0f);
    next_phase(2);
    model.backward(batch, opt, tape, fwd.record, dlogits);
    next_phase(3);
    ++step;
    adamw_step(params, grads, ms, vs, decay, adam, step);
    cuda_synchronize();
    next_phase(4);
    return tape.peak_bytes();
  }
};

nlohmann::json memory_json(const MemoryStats& s) {
  nlohmann::json peak = nlohmann::json::object();
  for (int i = 0; i < kMemCategories; ++i)
    peak[std::string(category_name(MemCategory(i)))] = s.peak[size_t(i)];
  return {{"peak_by_category", peak}, {"peak_total", s.total_peak}, {"reserved", s.reserved},
          {"system_allocs", s.system_allocs}};
}

nlohmann::json describe(const Args& a, const BertConfig& c) {
  return {{"bench", "bert_step"},
          {"impl", "bertrazor"},
          {"device", std::string(device_name(a.device))},
          {"config", a.config.empty() ? "bert-base defaults" : a.config},
          {"layers", c.num_hidden_layers},
          {"hidden", c.hidden_size},
          {"seq", a.seq},
          {"preset", a.preset},
          {"gradient_checkpointing", a.checkpoint},
          {"eval", a.eval},
          {"prune_ratio", a.prune_ratio},
          {"param_dtype", "f32"},
          {"compute_dtype", a.bf16 ? (a.device == Device::cpu ? "f32 (bf16 products)" : "bf16") : "f32"},
          {"attention", std::string(attention_kernel_name(a.attention))},
          {"budget_bytes", a.budget_bytes}};
}

// The --profile table: per phase, its ops by time, then the phase's time outside them.
void print_profile(const Trainer& tr, int steps, double median_step) {
  const std::vector<profile::Row> rows = profile::rows();
  double total = 0.0;
  for (double s : tr.phase_seconds) total += s;
  std::printf("  profile over %d steps (%.3f ms/step summed over the phases; median step %.3f ms):\n",
              steps, total / steps * 1e3, median_step * 1e3);
  std::printf("    %-10s %-24s %10s %7s %9s %10s\n", "phase", "op", "ms/step", "share", "calls/st",
              "us/call");
  for (int p = 0; p < 5; ++p) {
    const char* phase = Trainer::phase_names[p];
    std::vector<profile::Row> mine;
    double inside = 0.0;
    for (const profile::Row& r : rows)
      if (std::string(r.phase) == phase) {
        mine.push_back(r);
        inside += r.seconds;
      }
    std::sort(mine.begin(), mine.end(),
              [](const profile::Row& x, const profile::Row& y) { return x.seconds > y.seconds; });
    const double ps = tr.phase_seconds[p];
    std::printf("    %-10s %-24s %10.3f %6.1f%%\n", phase, "(phase total)", ps / steps * 1e3,
                100.0 * ps / total);
    for (const profile::Row& r : mine)
      std::printf("    %-10s %-24s %10.3f %6.1f%% %9.1f %10.1f\n", "", r.op, r.seconds / steps * 1e3,
                  100.0 * r.seconds / total, double(r.calls) / steps, r.seconds / double(r.calls) * 1e6);
    std::printf("    %-10s %-24s %10.3f %6.1f%%\n", "", "(outside kernel ops)",
                (ps - inside) / steps * 1e3, 100.0 * (ps - inside) / total);
  }
}

// The --profile rows for --json: each (phase, op) and each phase's total, per step.
nlohmann::json profile_json(const Trainer& tr, int steps) {
  nlohmann::json p = nlohmann::json::array();
  for (const profile::Row& r : profile::rows())
    p.push_back({{"phase", r.phase}, {"op", r.op}, {"seconds_per_step", r.seconds / steps},
                 {"calls_per_step", double(r.calls) / steps}});
  for (int i = 0; i < 5; ++i)
    p.push_back({{"phase", Trainer::phase_names[i]}, {"op", "(phase total)"},
                 {"seconds_per_step", tr.phase_seconds[i] / steps}});
  return p;
}

// Long (81 lines): the timing loop, then one JSON and one text report of the same figures.
int time_steps(const Args& a, const BertConfig& c) {
  Trainer tr(c, a.device, a);
  const int64_t P = non_embedding_params(tr.model.params());
  const int total = a.warmup + a.steps;
  std::vector<BertBatch> batches;
  for (int i = 0; i < std::min(total, 4); ++i)
    batches.push_back(synthetic_batch(c, a.batch, a.seq, a.device, uint32_t(i)));
  Tape tape(a.device);
  std::vector<double> times;
  int64_t saved_peak = 0, allocs_before = 0;
  for (int i = 0; i < total; ++i) {
    if (i == a.warmup) {
      profile::set_enabled(a.profile);
      reset_peak_memory(a.device);
      allocs_before = memory_stats(a.device).system_allocs;
    }
    auto t0 = std::chrono::steady_clock::now();
    const BertBatch& batch = batches[size_t(i) % batches.size()];
    int64_t saved = 0;
    if (a.eval) tr.run_eval(batch);
    else saved = tr.run(batch, tape);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i >= a.warmup) {
      times.push_back(dt);
      saved_peak = std::max(saved_peak, saved);
    }
  }
  const MemoryStats ms = memory_stats(a.device);
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  const double med = sorted[sorted.size() / 2];
  const double tokens = double(a.batch * a.seq);
  const double flops = model_flops(c, P, a.batch, a.seq) / (a.eval ? 3 : 1);
  int64_t dense_equiv = 0;
  for (const SiteRecord& r : tape.records()) dense_equiv += r.dense_bytes;

  nlohmann::json j = describe(a, c);
  j["batch"] = a.batch;
  j["steps"] = a.steps;
  j["warmup"] = a.warmup;
  j["median_step_s"] = med;
  j["min_step_s"] = sorted.front();
  j["max_step_s"] = sorted.back();
  j["tokens_per_s"] = tokens / med;
  j["non_embedding_params"] = P;
  j["model_flops_per_step"] = flops;
  j["achieved_tflops"] = flops / med / 1e12;
  j["memory"] = memory_json(ms);
  j["saved_activation_peak_bytes"] = saved_peak;
  j["saved_activation_dense_equiv_bytes"] = dense_equiv;
  j["steady_state_system_allocs"] = ms.system_allocs - allocs_before;
  j["attention_kernel"] = tr.model.uses_flash_attention() ? "flash" : "materialized";
  j["bf16_param_copy_bytes"] = tr.model.compute_param_bytes();
  if (a.json) {
    if (a.profile) j["profile"] = profile_json(tr, a.steps);
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("bert %s on %s: L=%lld H=%lld batch %lld seq %lld preset %s (prune %.2f)%s, f32 "
              "parameters, %s compute, %s attention\n",
              a.eval ? "evaluation forward" : "step",
              std::string(device_name(a.device)).c_str(), (long long)c.num_hidden_layers,
              (long long)c.hidden_size, (long long)a.batch, (long long)a.seq, a.preset.c_str(),
              a.prune_ratio, a.checkpoint ? ", every layer checkpointed" : "",
              a.bf16 ? "bf16" : "f32",
              tr.model.uses_flash_attention() ? "flash" : "materialized");
  if (a.bf16)
    std::printf("  bf16 parameter copies: %lld bytes (in the workspace category)\n",
                (long long)tr.model.compute_param_bytes());
  std::printf("  median step %.3f ms (min %.3f, max %.3f, %d steps after %d warm-up)\n", med * 1e3,
              sorted.front() * 1e3, sorted.back() * 1e3, a.steps, a.warmup);
  std::printf("  %.1f tokens/s; %.3e model FLOPs/step (P=%lld non-embedding params); %.3f TFLOP/s\n",
              tokens / med, flops, (long long)P, flops / med / 1e12);
  std::printf("  peak memory by category (bytes):\n");
  for (int i = 0; i < kMemCategories; ++i)
    std::printf("    %-18s %14lld\n", std::string(category_name(MemCategory(i))).c_str(),
                (long long)ms.peak[size_t(i)]);
  std::printf("    %-18s %14lld\n    %-18s %14lld\n", "total peak", (long long)ms.total_peak,
              "reserved", (long long)ms.reserved);
  std::printf("  saved activations: peak %lld bytes (dense would hold %lld, ratio %.3f)%s\n",
              (long long)saved_peak, (long long)dense_equiv,
              dense_equiv > 0 ? double(saved_peak) / double(dense_equiv) : 0.0,
              a.checkpoint ? " on the forward's tape: the layer inputs; the recomputed layers' "
                             "tapes count in the category peaks above"
                           : "");
  std::printf("  system allocations during timed steps: %lld\n",
              (long long)(ms.system_allocs - allocs_before));
  if (a.profile) print_profile(tr, a.steps, med);
  return 0;
}

// One step at batch B under the budget (already set); the allocator's br::Error means "does not fit".
std::optional<int64_t> try_batch(const Args& a, const BertConfig& c, int64_t B, std::string& why) {
  try {
    Args ab = a;
    ab.batch = B;
    Trainer tr(c, a.device, ab);
    Tape tape(a.device);
    BertBatch batch = synthetic_batch(c, B, a.seq, a.device, 0);
    reset_peak_memory(a.device);
    tr.run(batch, tape);
    tr.run(batch, tape);  // the second step holds the AdamW state and a warm cache
    return memory_stats(a.device).total_peak;
  } catch (const Error& e) {
    why = e.what();
    cuda_synchronize();
    release_cached_memory(a.device);
    return std::nullopt;
  }
}

int find_max_batch(const Args& a, const BertConfig& c) {
  BR_CHECK(a.budget_bytes > 0, "bench_bert_step: --find_max_batch needs --budget_bytes > 0");
  set_memory_budget(a.device, a.budget_bytes);
  nlohmann::json trials = nlohmann::json::array();
  int64_t lo = 0, hi = 0, lo_peak = 0;
  std::string last_error;
  auto attempt = [&](int64_t B) {
    std::string why;
    auto peak = try_batch(a, c, B, why);
    trials.push_back({{"batch", B}, {"fits", peak.has_value()}, {"peak_total", peak.value_or(0)}});
    if (!a.json)
      std::printf("  batch %6lld: %s\n", (long long)B,
                  peak ? fmt::format("fits, peak {} bytes", *peak).c_str() : ("does not fit: " + why).c_str());
    if (!peak) last_error = why;
    if (peak) lo_peak = std::max(lo_peak, *peak);
    return peak.has_value();
  };
  // Doubling to the first failure, then bisection between the last fit and the first failure.
  for (int64_t B = 1;; B *= 2) {
    if (B > a.max_batch) { hi = a.max_batch + 1; break; }
    if (attempt(B)) lo = B;
    else { hi = B; break; }
  }
  if (lo == a.max_batch) hi = lo + 1;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (attempt(mid)) lo = mid;
    else hi = mid;
  }
  set_memory_budget(a.device, 0);
  nlohmann::json j = describe(a, c);
  j["mode"] = "find_max_batch";
  j["max_batch"] = lo;
  j["capped_at_max_batch"] = lo >= a.max_batch;
  j["trials"] = trials;
  j["last_error"] = last_error;
  if (a.json) std::printf("%s\n", j.dump().c_str());
  else
    std::printf("largest batch at seq %lld under %lld bytes on %s, preset %s: %lld%s\n",
                (long long)a.seq, (long long)a.budget_bytes, std::string(device_name(a.device)).c_str(),
                a.preset.c_str(), (long long)lo, lo >= a.max_batch ? " (the --max_batch cap)" : "");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  br::retain_freed_host_memory();  // as the CLI does
  const Args a = parse(argc, argv);
  try {
    BertConfig c = a.config.empty() ? BertConfig{} : BertConfig::from_json_file(a.config);
    c.set_num_labels(a.num_labels);
    BR_CHECK(a.seq <= c.max_position_embeddings, "bench_bert_step: --seq {} exceeds max_position_embeddings {}",
             a.seq, c.max_position_embeddings);
    BR_CHECK(a.device == Device::cpu || cuda_available(),
             "bench_bert_step: --device cuda but no CUDA device is available (built with CUDA: {})",
             cuda_built());
    if (a.find_max_batch) return find_max_batch(a, c);
    if (a.budget_bytes > 0) set_memory_budget(a.device, a.budget_bytes);
    return time_steps(a, c);
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_bert_step: %s\n", e.what());
    return 1;
  }
}
