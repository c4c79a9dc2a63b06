// bertrazor train end to end on a tiny random model and synthetic RTE-layout data: outputs,
// resume bit-identical to an uninterrupted run, gradient accumulation, and failures that are
// clear and never lose a checkpoint.
#include <algorithm>
#include <catch2/catch.hpp>
#include <fmt/ranges.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "kernels/gemm.h"
#include "harness.h"
#include "trainer_fixtures.h"
#include "core/text.h"
#include "models/bert_io.h"
#include "models/safetensors.h"
#include "train/args.h"
#include "train/batch.h"
#include "train/glue.h"
#include "models/memory_plan.h"
#include "train/memory_report.h"
#include "train/step.h"
#include "train/tensorboard.h"
#include "train/trainer.h"
#include "train/wordpiece.h"

using namespace br;
using test::make_data;
using test::make_model;
using test::TempDir;
using test::weights;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> base_args(const fs::path& model, const fs::path& data, const fs::path& out) {
  return {"--model_name_or_path", model.string(), "--task_name", "rte", "--data_dir", data.string(),
          "--output_dir", out.string(), "--do_train", "--max_seq_length", "24",
          "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--seed", "7",
          "--device", "cpu", "--disable_tqdm", "True"};
}

void run(std::vector<std::string> args, const std::vector<std::string>& extra) {
  args.insert(args.end(), extra.begin(), extra.end());
  run_glue(parse_training_args(args));
}

}  // namespace

TEST_CASE("train writes the Hugging Face output layout", "[train][trainer]") {
  TempDir t("layout");
  fs::path model = make_model(t.path), data = make_data(t.path), out = t.path / "out";
  run(base_args(model, data, out),
      {"--do_eval", "--do_predict", "--max_steps", "4", "--save_steps", "2", "--logging_steps", "1",
       "--evaluation_strategy", "steps", "--eval_steps", "2", "--save_total_limit", "1",
       "--load_best_model_at_end", "--metric_for_best_model", "accuracy", "--backRazor", "True",
       "--backrazor_preset", "all"});
  for (const char* f : {"config.json", "model.safetensors", "vocab.txt", "trainer_state.json",
                        "train_results.json", "eval_results.json", "all_results.json",
                        "training_args.json"})
    CHECK(fs::exists(out / f));
  std::ifstream pred(out / "predict_results_rte.txt");
  std::string header;
  std::getline(pred, header);
  CHECK(header == "index\tprediction");
  nlohmann::json all = nlohmann::json::parse(std::ifstream(out / "all_results.json"));
  CHECK(all.contains("eval_accuracy"));
  CHECK(all.at("train_saved_activation_bytes").get<int64_t>() > 0);
  nlohmann::json state = nlohmann::json::parse(std::ifstream(out / "trainer_state.json"));
  CHECK(state.at("global_step") == 4);
  CHECK(state.at("log_history").size() >= 4);
  // save_total_limit 1 keeps the best and, when different, the newest.
  int checkpoints = 0;
  for (auto& e : fs::directory_iterator(out))
    if (e.path().filename().string().rfind("checkpoint-", 0) == 0) ++checkpoints;
  CHECK(checkpoints >= 1);
  CHECK(checkpoints <= 2);
}

TEST_CASE("resume from a checkpoint ends bit-identical to an uninterrupted run", "[train][trainer][resume]") {
  TempDir t("resume");
  fs::path model = make_model(t.path), data = make_data(t.path);
  std::vector<std::string> common = {"--max_steps", "8", "--save_steps", "3", "--lr_scheduler_type",
                                     "linear", "--weight_decay", "0.01", "--warmup_steps", "2"};
  run(base_args(model, data, t.path / "full"), common);
  // The interrupted run: what it left on disk is checkpoint-3, so resume from a copy of it.
  fs::create_directories(t.path / "resumed");
  fs::copy(t.path / "full" / "checkpoint-3", t.path / "resumed" / "checkpoint-3", fs::copy_options::recursive);
  run(base_args(model, data, t.path / "resumed"), common);  // auto-resumes from checkpoint-3
  CHECK(weights(t.path / "resumed" / "model.safetensors") == weights(t.path / "full" / "model.safetensors"));
}

// Logged losses and grad norms, and the final weights, of a run.
std::pair<std::vector<nlohmann::json>, std::vector<std::vector<float>>> run_record(const fs::path& out) {
  nlohmann::json state = nlohmann::json::parse(std::ifstream(out / "trainer_state.json"));
  std::vector<nlohmann::json> logs;
  for (const auto& e : state.at("log_history"))
    if (e.contains("loss")) logs.push_back({e.at("loss"), e.at("grad_norm")});
  return {logs, weights(out / "model.safetensors")};
}

TEST_CASE("gradient checkpointing trains bit-identically, alone and inside Back Razor",
          "[train][trainer][checkpoint]") {
  TempDir t("ckpt");
  // Short first sentences: the batches hold padding, which the recompute must rank as forward did.
  fs::path model = make_model(t.path), data = make_data(t.path);
  const std::vector<std::string> common = {"--max_steps", "4", "--logging_steps", "1"};
  for (std::vector<std::string> policy : {std::vector<std::string>{},
                                          {"--backRazor", "--backrazor_preset", "balanced"}}) {
    INFO((policy.empty() ? "dense" : "balanced"));
    std::vector<std::string> extra = common;
    extra.insert(extra.end(), policy.begin(), policy.end());
    const fs::path plain = t.path / ("plain" + std::to_string(policy.size()));
    const fs::path ckpt = t.path / ("ckpt" + std::to_string(policy.size()));
    const fs::path mixed = t.path / ("mixed" + std::to_string(policy.size()));
    run(base_args(model, data, plain), extra);
    extra.push_back("--gradient_checkpointing");
    run(base_args(model, data, ckpt), extra);
    extra.back() = "--backrazor_layers";
    extra.push_back("1=checkpoint");
    run(base_args(model, data, mixed), extra);
    auto want = run_record(plain);
    REQUIRE(want.first.size() == 4);
    CHECK(run_record(ckpt) == want);
    CHECK(run_record(mixed) == want);
    nlohmann::json all = nlohmann::json::parse(std::ifstream(ckpt / "all_results.json"));
    nlohmann::json dense = nlohmann::json::parse(std::ifstream(plain / "all_results.json"));
    CHECK(all.at("train_saved_activation_bytes").get<int64_t>() <
          dense.at("train_saved_activation_bytes").get<int64_t>());
  }
  std::vector<std::string> bad = base_args(model, data, t.path / "bad");
  bad.insert(bad.end(), {"--gradient_checkpointing", "--backrazor_layers", "0=balanced"});
  CHECK_THROWS_WITH(parse_training_args(bad),
                    Catch::Contains("--gradient_checkpointing: --backrazor_layers '0=balanced' runs "
                                    "layer 0 without a checkpoint"));
  bad = base_args(model, data, t.path / "bad");
  bad.insert(bad.end(), {"--backrazor_layers", "0-1"});
  CHECK_THROWS_WITH(parse_training_args(bad), Catch::Contains("--backrazor_layers: layer plan '0-1'"));
  bad = base_args(model, data, t.path / "bad");
  bad.insert(bad.end(), {"--backrazor_layers", "5=checkpoint", "--max_steps", "1"});
  CHECK_THROWS_WITH(run_glue(parse_training_args(bad)),
                    Catch::Contains("layer '5' is not one of 0..1"));
  CHECK_FALSE(fs::exists(t.path / "bad" / "model.safetensors"));
}

TEST_CASE("train with bf16 on the CPU: products on bf16-rounded operands, close to fp32, the mode "
          "reset after the run", "[train][trainer][bf16]") {
  TempDir t("bf16");
  fs::path model = make_model(t.path), data = make_data(t.path);
  const std::vector<std::string> common = {"--max_steps", "4", "--logging_steps", "1"};
  run(base_args(model, data, t.path / "f32"), common);
  std::vector<std::string> extra = common;
  extra.push_back("--bf16");
  run(base_args(model, data, t.path / "bf16"), extra);
  CHECK_FALSE(cpu_bf16_matmul());  // process-wide during the run only
  run(base_args(model, data, t.path / "bf16b"), extra);
  const auto f32 = run_record(t.path / "f32"), bf16 = run_record(t.path / "bf16");
  CHECK(run_record(t.path / "bf16b") == bf16);  // deterministic
  REQUIRE(bf16.first.size() == f32.first.size());
  CHECK(bf16.second != f32.second);  // the products were rounded
  for (size_t i = 0; i < f32.first.size(); ++i) {
    const double want = f32.first[i][0].get<double>(), got = bf16.first[i][0].get<double>();
    INFO("step " << i << " loss fp32 " << want << " bf16 " << got);
    CHECK(std::fabs(got - want) <= 2e-2 * std::fabs(want));
  }
  std::vector<std::string> bad = base_args(model, data, t.path / "bad");
  bad.insert(bad.end(), {"--fp16", "--max_steps", "1"});
  CHECK_THROWS_WITH(run_glue(parse_training_args(bad)), Catch::Contains("--fp16"));
}

TEST_CASE("train --max_memory applies the planner's plan and records it", "[train][trainer][memory_plan]") {
  TempDir t("maxmem");
  fs::path model = make_model(t.path), data = make_data(t.path);
  const BertConfig c = BertConfig::from_json_file((model / "config.json").string());
  SavePlan dense_plan;
  dense_plan.layers.resize(size_t(c.num_hidden_layers));
  const StepBytes dense = predict_step_bytes(c, 8, 24, dense_plan);
  const std::vector<std::string> common = {"--max_steps", "3", "--logging_steps", "1"};
  const fs::path plain = t.path / "plain", planned = t.path / "planned";
  run(base_args(model, data, plain), common);
  // A byte under the dense peak: an exact plan, so the run is bit-identical to the dense one.
  std::vector<std::string> extra = common;
  extra.insert(extra.end(), {"--max_memory", std::to_string(dense.peak - 1) + "B"});
  run(base_args(model, data, planned), extra);
  CHECK(run_record(planned) == run_record(plain));
  nlohmann::json all = nlohmann::json::parse(std::ifstream(planned / "all_results.json"));
  nlohmann::json state = nlohmann::json::parse(std::ifstream(planned / "trainer_state.json"));
  CHECK(all.at("memory_plan").at("kind") == "exact");
  CHECK(all.at("memory_plan").at("predicted_bytes").at("peak").get<int64_t>() < dense.peak);
  CHECK(state.at("memory_plan") == all.at("memory_plan"));
  // Budgets no plan fits, and flags that choose the plan by hand: errors before any file.
  for (std::vector<std::string> bad_flags :
       {std::vector<std::string>{"--max_memory", "1KB"},
        {"--max_memory", std::to_string(dense.persistent() + 64) + "B"},
        {"--max_memory", "1GB", "--gradient_checkpointing"},
        {"--max_memory", "1 GiB", "--backRazor"},
        {"--max_memory", "12 parsecs"}}) {
    INFO(fmt::format("{}", fmt::join(bad_flags, " ")));
    std::vector<std::string> bad = base_args(model, data, t.path / "bad");
    bad.insert(bad.end(), bad_flags.begin(), bad_flags.end());
    CHECK_THROWS_WITH(run_glue(parse_training_args(bad)), Catch::StartsWith("--"));
    CHECK_FALSE(fs::exists(t.path / "bad"));
  }
}

TEST_CASE("gradient accumulation 2 x 4 equals batch 8", "[train][trainer]") {
  TempDir t("accum");
  fs::path model = make_model(t.path), data = make_data(t.path);
  run(base_args(model, data, t.path / "b8"), {"--max_steps", "4"});
  std::vector<std::string> a = base_args(model, data, t.path / "b4x2");
  a[a.size() - 9] = "4";  // per_device_train_batch_size
  run(a, {"--max_steps", "4", "--gradient_accumulation_steps", "2"});
  auto w8 = weights(t.path / "b8" / "model.safetensors", true);
  auto w4 = weights(t.path / "b4x2" / "model.safetensors", true);
  REQUIRE(w8.size() == w4.size());
  for (size_t i = 0; i < w8.size(); ++i) {
    Tensor x = Tensor::from_host(w4[i], {int64_t(w4[i].size())});
    Tensor y = Tensor::from_host(w8[i], {int64_t(w8[i].size())});
    INFO("tensor " << i);
    CHECK(test::rel_l2(x, y) < 1e-5);
  }
}

// Per-batch padding: each batch runs as groups of similar lengths (--split_batch_by_length, the
// default), each group's gradient weighted by its share of the batch. Every example's forward is
// independent of the others, and sparse sites keep the counts of the whole batch's length among
// real tokens only, so the weights equal one whole batch's to rounding, Back Razor included.
// Attention dropout is off, as its masks are keyed by the padded length (the others are not).
// Sparse sites that rank padding too (skip_padding off) would keep other values: no split then.
TEST_CASE("a batch split by length trains as the whole batch, to rounding", "[train][trainer]") {
  TempDir t("split");
  fs::path model = make_model(t.path), data = make_data(t.path);
  const std::vector<std::string> policy = GENERATE(
      std::vector<std::string>{},
      std::vector<std::string>{"--backRazor", "--backrazor_preset", "all"},
      std::vector<std::string>{"--backRazor", "--backrazor_preset", "balanced"},
      std::vector<std::string>{"--backRazor", "--no_backrazor_skip_padding"});
  INFO("flags: " << fmt::format("{}", fmt::join(policy, " ")));
  const bool splits = policy.size() != 2;
  // Attention dropout on: its masks do not depend on the padded length (DropoutKey::length).
  std::vector<std::string> common = {"--max_steps", "4", "--pad_to_max_length", "False"};
  common.insert(common.end(), policy.begin(), policy.end());
  std::vector<std::string> whole = common, split = common;
  whole.insert(whole.end(), {"--split_batch_by_length", "False"});
  run(base_args(model, data, t.path / "whole"), whole);
  run(base_args(model, data, t.path / "split"), split);
  auto w_whole = weights(t.path / "whole" / "model.safetensors", true);
  auto w_split = weights(t.path / "split" / "model.safetensors", true);
  REQUIRE(w_whole.size() == w_split.size());
  bool any_bit_differs = false;  // one group would give the same bits: the batches did split
  for (size_t i = 0; i < w_whole.size(); ++i) {
    INFO("tensor " << i);
    any_bit_differs = any_bit_differs || w_whole[i] != w_split[i];
    CHECK(test::rel_l2(Tensor::from_host(w_split[i], {int64_t(w_split[i].size())}),
                       Tensor::from_host(w_whole[i], {int64_t(w_whole[i].size())})) < 1e-5);
  }
  CHECK(any_bit_differs == splits);
  const nlohmann::json a = nlohmann::json::parse(read_file((t.path / "whole" / "train_results.json").string()));
  const nlohmann::json b = nlohmann::json::parse(read_file((t.path / "split" / "train_results.json").string()));
  CHECK(b.at("train_loss").get<double>() == Approx(a.at("train_loss").get<double>()).epsilon(1e-5));
  // total_flos counted as HF pads: each batch to its longest
  CHECK(nlohmann::json::parse(read_file((t.path / "split" / "trainer_state.json").string())).at("total_flos") ==
        nlohmann::json::parse(read_file((t.path / "whole" / "trainer_state.json").string())).at("total_flos"));
  // The saved activations of the largest group, less than the whole batch's.
  if (splits)
    CHECK(b.at("train_saved_activation_bytes").get<int64_t>() < a.at("train_saved_activation_bytes").get<int64_t>());
  else
    CHECK((b.at("train_saved_activation_bytes") == a.at("train_saved_activation_bytes") &&
           b.at("train_loss") == a.at("train_loss")));
}

TEST_CASE("training failures are clear and keep the last checkpoint", "[train][trainer][errors]") {
  TempDir t("errors");
  fs::path model = make_model(t.path), data = make_data(t.path);
  fs::path out = t.path / "out";
  SECTION("NaN loss stops at its step and names the last good checkpoint") {
    run(base_args(model, data, out), {"--max_steps", "2", "--save_steps", "2"});
    std::string before = std::to_string(fs::file_size(out / "checkpoint-2" / "model.safetensors"));
    std::vector<std::string> a = base_args(model, data, out);
    a[a.size() - 7] = "1e30";  // learning rate: the weights blow up
    CHECK_THROWS_WITH(run(a, {"--max_steps", "6", "--save_steps", "100", "--max_grad_norm", "0",
                              "--resume_from_checkpoint", (out / "checkpoint-2").string()}),
                      Catch::Contains("the loss is") && Catch::Contains("checkpoint-2"));
    CHECK(std::to_string(fs::file_size(out / "checkpoint-2" / "model.safetensors")) == before);
  }
  SECTION("an existing output dir needs --overwrite_output_dir") {
    fs::create_directories(out);
    std::ofstream(out / "something.txt") << "x";
    CHECK_THROWS_WITH(run(base_args(model, data, out), {"--max_steps", "1"}),
                      Catch::Contains("already exists and is not empty"));
  }
  SECTION("max_seq_length over the model's limit") {
    std::vector<std::string> a = base_args(model, data, out);
    a[a.size() - 11] = "64";
    CHECK_THROWS_WITH(run(a, {"--max_steps", "1"}), Catch::Contains("max_position_embeddings 32"));
  }
  SECTION("malformed data names the file and line") {
    std::ofstream(data / "train.tsv", std::ios::app) << "41\tonly two columns\n";
    CHECK_THROWS_WITH(run(base_args(model, data, out), {"--max_steps", "1"}),
                      Catch::Contains("train.tsv:42"));  // header + 40 rows
  }
  SECTION("an empty training set") {
    std::ofstream(data / "train.tsv") << "index\tsentence1\tsentence2\tlabel\n";
    CHECK_THROWS_WITH(run(base_args(model, data, out), {"--max_steps", "1"}),
                      Catch::Contains("empty"));
  }
}

// `bertrazor memory` and `bertrazor train` given the same flags: the same policy, and the bytes
// memory reports per site are those of a real trainer step (the full-length batch memory assumes:
// every example fills max_seq_length), and of run_glue's own step.
TEST_CASE("memory reports the saved bytes train uses for the same flags", "[train][trainer][memory]") {
  TempDir t("memory");
  fs::path model = make_model(t.path), data = make_data(t.path, 40, 12, 20);
  const std::vector<std::string> extra = GENERATE(
      std::vector<std::string>{},                       // dense
      std::vector<std::string>{"--backRazor"},          // the default preset: seed in both
      std::vector<std::string>{"--backRazor", "--backrazor_preset", "all", "--prune_ratio", "0.7",
                               "--no_backrazor_skip_padding"},
      std::vector<std::string>{"--backRazor", "--backrazor_preset", "balanced", "--backrazor_dtype",
                               "fp32", "--backrazor_sites", "v=dense,ffn1_input=low:bf16"},
      std::vector<std::string>{"--backrazor_preset", "all"});  // without --backRazor: dense in both
  std::vector<std::string> shared = {"--model_name_or_path", model.string(), "--max_seq_length", "24",
                                     "--per_device_train_batch_size", "4", "--seed", "7", "--device", "cpu"};
  shared.insert(shared.end(), extra.begin(), extra.end());
  INFO("flags: " << fmt::format("{}", fmt::join(extra, " ")));
  std::vector<std::string> train_flags = shared;
  for (const char* f : {"--do_train", "--task_name", "rte", "--max_steps", "1", "--disable_tqdm", "True"})
    train_flags.push_back(f);
  for (const std::string& f : {std::string("--data_dir"), data.string(), std::string("--output_dir"),
                               (t.path / "out").string()})
    train_flags.push_back(f);
  const CommandArgs ma = parse_command_args(Command::memory, shared);
  const CommandArgs ta = parse_command_args(Command::train, train_flags);

  const BackRazorPolicy mp = memory_model(ma).policy(), tp = backrazor_policy(ta);
  CHECK(mp.skip_padding == tp.skip_padding);
  for (int s = 0; s < kSites; ++s) {
    INFO("site " << site_name(Site(s)));
    CHECK(mp.sites[size_t(s)].mode == tp.sites[size_t(s)].mode);
    CHECK(mp.sites[size_t(s)].value_dtype == tp.sites[size_t(s)].value_dtype);
    CHECK(mp.sites[size_t(s)].prune_ratio == tp.sites[size_t(s)].prune_ratio);
  }
  if (!ta.backRazor && !extra.empty())
    CHECK_THAT(ma.ignored_notes.at(0), Catch::Contains("--backrazor_preset: no effect without --backRazor"));

  const MemoryReport r = memory_report(ma);
  REQUIRE((r.batch == 4 && r.seq == 24));

  // A trainer step: the model as train loads it, configured by train's arguments, on real data.
  BertForSequenceClassification m = from_pretrained(model.string(), Device::cpu,
                                                    glue_task("rte").label_names, uint64_t(ta.seed));
  configure_for_training(m, ta);
  WordPieceTokenizer tok = WordPieceTokenizer::from_vocab_file((model / "vocab.txt").string());
  Dataset ds{"train", load_glue_split(glue_task("rte"), data.string(), Split::train)[0], {}};
  for (const Example& e : ds.examples)
    ds.encodings.push_back(tok.encode(e.text_a, e.text_b ? &*e.text_b : nullptr, 24, true));
  BertBatch batch = collate(ds, {0, 1, 2, 3}, Device::cpu, false, tok.pad_id());
  REQUIRE(batch.attention_mask.to_vector<int32_t>() == std::vector<int32_t>(4 * 24, 1));
  Tape tape(Device::cpu);
  StepResult step = train_step(m, batch, train_step_options(ta, 0), tape);
  CHECK(step.saved_bytes == r.saved_activation_bytes);
  REQUIRE(tape.records().size() == r.sites.size());
  for (size_t i = 0; i < r.sites.size(); ++i) {
    const SiteRecord &want = tape.records()[i], &got = r.sites[i];
    INFO("tape entry " << i << " " << want.site);
    CHECK(got.site == want.site);
    CHECK(got.shape == want.shape);
    CHECK(got.policy.mode == want.policy.mode);
    CHECK(got.stored_bytes == want.stored_bytes);
    CHECK(got.dense_bytes == want.dense_bytes);
  }

  // And run_glue's own step, from the same parsed arguments.
  run_glue(ta);
  nlohmann::json results = nlohmann::json::parse(read_file((t.path / "out" / "train_results.json").string()));
  CHECK(results.at("train_saved_activation_bytes").get<int64_t>() == r.saved_activation_bytes);
}

// ---- data parallel: `mpirun -np 2` and `bertrazor launch --nproc_per_node 2` with per-device
// batch 4 against one process with batch 8 (tests/CMakeLists.txt runs the three as a chain) ----

namespace {
fs::path dist_fixture() {
  const char* f = std::getenv("BERTRAZOR_DIST_FIXTURE");
  REQUIRE(f != nullptr);
  return f;
}

// What both the distributed runs and the reference share; batch 4 per rank.
std::vector<std::string> dist_args(const fs::path& root, const std::string& out, int batch) {
  return {"--model_name_or_path", (root / "model").string(), "--task_name", "rte", "--data_dir",
          (root / "RTE").string(), "--output_dir", (root / out).string(), "--overwrite_output_dir",
          "--do_train", "--do_eval", "--max_seq_length", "24", "--per_device_train_batch_size",
          std::to_string(batch), "--learning_rate", "1e-3", "--max_steps", "4", "--logging_steps",
          "1", "--evaluation_strategy", "steps", "--eval_steps", "2", "--seed", "7", "--device",
          "cpu", "--disable_tqdm", "True", "--weight_decay", "0.01"};
}

std::vector<nlohmann::json> train_logs(const fs::path& out) {
  nlohmann::json state = nlohmann::json::parse(std::ifstream(out / "trainer_state.json"));
  std::vector<nlohmann::json> r;
  for (const auto& e : state.at("log_history")) r.push_back(e);
  return r;
}
}  // namespace

TEST_CASE("data-parallel fixture: tiny model and data", "[.dist_setup]") {
  fs::path root = dist_fixture();
  fs::remove_all(root);
  fs::create_directories(root);
  make_model(root);
  make_data(root);
}

// BERTRAZOR_DIST_RUNS (comma-separated output folders, default "mpi,tcp") and BERTRAZOR_DIST_RTOL
// (default 1e-5) let tools/gpu_check.sh compare its NCCL runs on CUDA with this CPU reference.
TEST_CASE("data-parallel runs equal one process with the global batch", "[.dist_compare]") {
  fs::path root = dist_fixture();
  std::vector<std::string> a = dist_args(root, "single", 8);
  run_glue(parse_training_args(a));
  std::vector<nlohmann::json> ref = train_logs(root / "single");
  auto wref = weights(root / "single" / "model.safetensors", true);
  std::vector<std::string> runs;
  {
    const char* e = std::getenv("BERTRAZOR_DIST_RUNS");
    std::stringstream ss(e && *e ? e : "mpi,tcp");
    for (std::string r; std::getline(ss, r, ',');)
      if (!r.empty()) runs.push_back(r);
  }
  const char* tol_env = std::getenv("BERTRAZOR_DIST_RTOL");
  const double tol = tol_env && *tol_env ? std::stod(tol_env) : 1e-5;
  for (const std::string& run : runs) {
    INFO("run " << run);
    REQUIRE(fs::exists(root / run / "trainer_state.json"));
    std::vector<nlohmann::json> got = train_logs(root / run);
    REQUIRE(got.size() == ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      INFO("log entry " << i << ": " << got[i].dump() << " vs " << ref[i].dump());
      for (const char* k : {"loss", "grad_norm", "eval_loss", "eval_accuracy"}) {
        if (!ref[i].contains(k)) continue;
        double x = got[i].at(k).get<double>(), y = ref[i].at(k).get<double>();
        CHECK(std::fabs(x - y) <= tol * std::max(1.0, std::fabs(y)) + (std::string(k) == "loss" ? 1e-4 : 0.0));
      }
    }
    auto w = weights(root / run / "model.safetensors", true);
    REQUIRE(w.size() == wref.size());
    for (size_t i = 0; i < w.size(); ++i) {
      INFO("tensor " << i);
      CHECK(test::rel_l2(Tensor::from_host(w[i], {int64_t(w[i].size())}),
                         Tensor::from_host(wref[i], {int64_t(wref[i].size())})) < tol);
    }
  }
}

TEST_CASE("train does what the do_* flags say, as run_glue.py", "[train][trainer][do]") {
  TempDir t("do_flags");
  fs::path model = make_model(t.path), data = make_data(t.path);
  std::vector<std::string> base = base_args(model, data, t.path / "x");
  base.erase(std::find(base.begin(), base.end(), "--do_train"));
  CHECK_THROWS_WITH(parse_command_args(Command::train, base),
                    Catch::Contains("nothing to do: give one or more of --do_train, --do_eval, "
                                    "--do_predict"));
  // An evaluation strategy sets do_eval (TrainingArguments.__post_init__), so that is enough.
  std::vector<std::string> strat = base;
  strat.insert(strat.end(), {"--evaluation_strategy", "epoch"});
  CHECK(parse_command_args(Command::train, strat).do_eval);
  CHECK(parse_command_args(Command::eval, base).do_eval);
  CHECK(parse_command_args(Command::predict, base).do_predict);
  for (int mask = 1; mask < 8; ++mask) {
    const bool tr = mask & 1, ev = mask & 2, pr = mask & 4;
    INFO("do_train " << tr << " do_eval " << ev << " do_predict " << pr);
    const fs::path out = t.path / ("run" + std::to_string(mask));
    std::vector<std::string> a = base_args(model, data, out);
    a.erase(std::find(a.begin(), a.end(), "--do_train"));
    a.insert(a.end(), {"--max_steps", "2"});
    if (tr) a.push_back("--do_train");
    if (ev) a.push_back("--do_eval");
    if (pr) a.push_back("--do_predict");
    CommandArgs parsed = parse_command_args(Command::train, a);
    CHECK(parsed.do_train == tr);
    CHECK(parsed.do_eval == ev);
    CHECK(parsed.do_predict == pr);
    run_glue(parsed);
    // run_glue.py: training writes the model and train_results.json; evaluation eval_results.json;
    // prediction predict_results_<task>.txt; nothing else runs.
    CHECK(fs::exists(out / "train_results.json") == tr);
    CHECK(fs::exists(out / "model.safetensors") == tr);
    CHECK(fs::exists(out / "eval_results.json") == ev);
    CHECK(fs::exists(out / "predict_results_rte.txt") == pr);
  }
}

TEST_CASE("train writes TensorBoard event files as HF's callback does", "[train][trainer][tensorboard]") {
  TempDir t("tb");
  fs::path model = make_model(t.path), data = make_data(t.path);
  run(base_args(model, data, t.path / "out"),
      {"--do_eval", "--max_steps", "4", "--logging_steps", "2", "--evaluation_strategy", "steps",
       "--eval_steps", "4", "--save_strategy", "no"});
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(t.path / "out" / "runs"))
    if (e.is_regular_file()) files.push_back(e.path());
  REQUIRE(files.size() == 1);
  CHECK(files[0].filename().string().rfind("events.out.tfevents.", 0) == 0);
  CHECK(files[0].parent_path().parent_path() == t.path / "out" / "runs");
  EventFile f = read_event_file(files[0].string());
  CHECK(f.file_version == "brain.Event:2");
  std::map<std::string, std::vector<int64_t>> steps;
  for (const ScalarEvent& e : f.scalars) steps[e.tag].push_back(e.step);
  CHECK(steps["train/loss"] == std::vector<int64_t>{2, 4});
  CHECK(steps["train/grad_norm"] == std::vector<int64_t>{2, 4});
  CHECK(steps["train/learning_rate"] == std::vector<int64_t>{2, 4});
  CHECK(steps["memory/saved_activation_bytes"] == std::vector<int64_t>{2, 4});
  CHECK(steps["memory/peak_bytes"].size() == 2);
  CHECK(steps["time/step_seconds"].size() == 2);
  CHECK(steps["eval/accuracy"] == std::vector<int64_t>{4, 4});  // in the loop, and the final one
  CHECK(steps["train/train_runtime"] == std::vector<int64_t>{4});
  // The logged loss in the events is the one in trainer_state.json.
  nlohmann::json state = nlohmann::json::parse(std::ifstream(t.path / "out" / "trainer_state.json"));
  for (const ScalarEvent& e : f.scalars)
    if (e.tag == "train/loss" && e.step == 2)
      CHECK(e.value == float(state.at("log_history").at(0).at("loss").get<double>()));
  // --report_to none writes nothing; --logging_dir puts the file where asked.
  run(base_args(model, data, t.path / "none"), {"--max_steps", "1", "--report_to", "none"});
  CHECK_FALSE(fs::exists(t.path / "none" / "runs"));
  run(base_args(model, data, t.path / "dir"),
      {"--max_steps", "1", "--logging_dir", (t.path / "logs").string(), "--report_to", "all"});
  CHECK_FALSE(fs::exists(t.path / "dir" / "runs"));
  int n = 0;
  for (const auto& e : fs::directory_iterator(t.path / "logs")) n += e.is_regular_file();
  CHECK(n == 1);
}
