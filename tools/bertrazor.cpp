// The bertrazor CLI: parses arguments, then calls library functions. No logic a library user needs.
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/allocator.h"
#include "core/device.h"
#include "core/error.h"
#include "models/bert_io.h"
#include "models/config.h"
#include "train/args.h"
#include "train/launch.h"
#include "train/memory_report.h"
#include "train/memory_svg.h"
#include "train/preempt.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace {

std::string top_usage() {
  std::string u = "usage: bertrazor <command> [flags]\n\ncommands:\n";
  for (br::Command c : br::kCommands)
    u += fmt::format("  {:<9} {}\n", br::command_name(c), br::command_summary(c));
  u += "\n`bertrazor <command> --help` lists the command's flags and their defaults.\n";
  return u;
}

// memory --max_memory SIZE --plan: the planner's choice for the step memory would measure.
int cmd_memory_plan(const br::CommandArgs& a) {
  br::BertConfig c = br::BertConfig::from_json_file(br::config_json_path(a));
  if (a.num_labels) c.set_num_labels(*a.num_labels);
  const br::MemoryPlan plan = br::plan_for_args(a, c, true);
  if (a.json) {
    nlohmann::json j = br::memory_plan_json(plan);
    j["config"] = br::config_json_path(a);
    j["batch"] = a.per_device_train_batch_size;
    j["seq"] = a.max_seq_length;
    std::puts(j.dump().c_str());
  } else {
    std::printf("model %s, batch %lld, seq %lld\n", br::config_json_path(a).c_str(),
                (long long)a.per_device_train_batch_size, (long long)a.max_seq_length);
    std::fputs(br::format_memory_plan(plan).c_str(), stdout);
  }
  return 0;
}

// memory --max_memory SIZE --find_max_batch: the largest batch of each plan kind.
int cmd_memory_max_batch(const br::CommandArgs& a) {
  br::BertConfig c = br::BertConfig::from_json_file(br::config_json_path(a));
  if (a.num_labels) c.set_num_labels(*a.num_labels);
  const std::vector<br::MaxBatchRow> rows = br::find_max_batches(a, c);
  if (a.json) {
    nlohmann::json j = {{"config", br::config_json_path(a)}, {"seq", a.max_seq_length},
                        {"budget_bytes", br::parse_byte_size(*a.max_memory)},
                        {"max_batch_searched", a.per_device_train_batch_size}};
    for (const br::MaxBatchRow& r : rows)
      j["plans"].push_back({{"plan", r.plan}, {"batch", r.batch}, {"peak_bytes", r.peak}});
    std::puts(j.dump().c_str());
    return 0;
  }
  std::printf("model %s, seq %lld, budget %s, batches up to %lld\n",
              br::config_json_path(a).c_str(), (long long)a.max_seq_length,
              br::format_bytes(br::parse_byte_size(*a.max_memory)).c_str(),
              (long long)a.per_device_train_batch_size);
  for (const br::MaxBatchRow& r : rows)
    std::printf("  %-22s batch %6lld  predicted peak %lld\n", r.plan.c_str(), (long long)r.batch,
                (long long)r.peak);
  return 0;
}

int cmd_memory(const br::CommandArgs& a) {
  for (const std::string& note : a.ignored_notes) std::fprintf(stderr, "note: %s\n", note.c_str());
  if (a.plan) return cmd_memory_plan(a);
  if (a.find_max_batch) return cmd_memory_max_batch(a);
  const std::string config = br::config_json_path(a);
  std::optional<br::MemoryPlan> plan;
  br::MemoryReport r;
  {  // the model is freed before --svg measures the --compare plans, each with a model of its own
    br::BertForSequenceClassification model = br::memory_model(a);
    if (a.max_memory) plan = br::plan_for_args(a, model.config(), true);
    r = br::measure_training_step(model, a);
  }
  const std::string device(br::device_name(br::resolved_device(a)));
  if (a.json) {
    nlohmann::json j = br::memory_report_json(r);
    j["config"] = config;
    j["backrazor"] = br::backrazor_label(a);
    j["preset"] = a.backRazor ? a.backrazor_preset : "none";
    j["prune_ratio"] = a.prune_ratio;
    j["backrazor_dtype"] = a.backrazor_dtype;
    j["backrazor_sites"] = a.backrazor_sites;
    j["backrazor_skip_padding"] = a.backrazor_skip_padding;
    j["device"] = device;
    if (plan) j["memory_plan"] = br::memory_plan_json(*plan);
    std::puts(j.dump().c_str());
  } else {
    const std::string values = a.backRazor ? fmt::format(" (prune_ratio {}, {} values)", a.prune_ratio,
                                                         a.backrazor_dtype)
                                           : "";
    std::printf("model %s, batch %lld, seq %lld, Back Razor %s%s, device %s\n\n", config.c_str(),
                (long long)r.batch, (long long)r.seq, br::backrazor_label(a).c_str(), values.c_str(),
                device.c_str());
    std::fputs(br::format_memory_table(r, a.per_layer).c_str(), stdout);
    if (plan)
      std::printf("\n%smeasured total peak %lld bytes, predicted %lld\n",
                  br::format_memory_plan(*plan).c_str(), (long long)r.stats.total_peak,
                  (long long)plan->bytes.peak);
  }
  if (a.svg) std::fprintf(stderr, "wrote %s\n", br::write_memory_svg(a, r).c_str());
  return 0;
}

int cmd_init(const br::CommandArgs& a) {
  br::BertConfig c = br::BertConfig::from_json_file(br::config_json_path(a));
  if (a.num_labels) c.set_num_labels(*a.num_labels);
  br::BertForSequenceClassification model(c, br::Device::cpu, br::DType::f32);
  model.init_weights(uint64_t(a.seed));
  br::save_pretrained(model, a.output_dir);
  if (a.vocab_file) {
    BR_CHECK(fs::exists(*a.vocab_file), "bertrazor init: --vocab_file {} does not exist", *a.vocab_file);
    fs::copy_file(*a.vocab_file, fs::path(a.output_dir) / "vocab.txt", fs::copy_options::overwrite_existing);
  }
  std::printf("wrote a randomly initialised model (seed %lld) to %s\n", (long long)a.seed,
              a.output_dir.c_str());
  return 0;
}

int cmd_info() {
  std::printf("bertrazor 0.1.0\ncuda built: %s\ncuda devices: %d\n", br::cuda_built() ? "yes" : "no",
              br::cuda_device_count());
  return 0;
}

int run(br::Command command, const std::vector<std::string>& rest) {
  br::CommandArgs a = br::parse_command_args(command, rest);
  if (a.help) {
    std::fputs(br::usage(command).c_str(), stdout);
    return 0;
  }
  switch (command) {
    case br::Command::train:
    case br::Command::eval:
    case br::Command::predict: {
      const br::RunResult r = br::run_glue(a);
      return r.stop_signal ? br::stop_exit_status(r.stop_signal) : 0;
    }
    case br::Command::memory: return cmd_memory(a);
    case br::Command::init: return cmd_init(a);
    case br::Command::launch: return br::launch(a.launch);
    case br::Command::info: return cmd_info();
  }
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  br::retain_freed_host_memory();
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(top_usage().c_str(), args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  std::optional<br::Command> command = br::command_from_name(args[0]);
  if (!command) {
    std::fprintf(stderr, "bertrazor: unknown command '%s'\n\n%s", args[0].c_str(), top_usage().c_str());
    return 2;
  }
  try {
    return run(*command, {args.begin() + 1, args.end()});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bertrazor: error: %s\n", e.what());
    return 1;
  }
}
