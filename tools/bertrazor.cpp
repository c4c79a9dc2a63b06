// The bertrazor CLI: parses arguments, then calls library functions. No logic a library user needs.
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/allocator.h"
#include "core/device.h"
#include "core/error.h"
#include "models/bert_io.h"
#include "models/config.h"
#include "models/model_path.h"
#include "train/args.h"
#include "train/launch.h"
#include "train/memory_report.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace {

const char* kUsage =
    "usage: bertrazor <command> [flags]\n"
    "\n"
    "commands:\n"
    "  train     fine-tune on a GLUE task; run_glue.py / TrainingArguments flags (implies --do_train)\n"
    "  eval      evaluate a model (implies --do_eval); same flags\n"
    "  predict   write predictions for the test split (implies --do_predict); same flags\n"
    "  memory    saved-activation bytes per site and peak memory of one real training step\n"
    "  init      write a randomly initialised model folder from a config.json\n"
    "  launch    torchrun-style: launch --nproc_per_node N [--nnodes M --node_rank R\n"
    "            --master_addr A --master_port P] <command> ...  (or run under mpirun)\n"
    "  info      what this build supports\n"
    "\n"
    "`bertrazor train --help` lists the training flags.\n";

// --flag value / --flag=value pairs for the small commands; unknown flags are errors.
std::map<std::string, std::string> parse_flags(const std::vector<std::string>& args, size_t from,
                                               const std::vector<std::string>& known,
                                               const std::vector<std::string>& switches,
                                               const char* command) {
  std::map<std::string, std::string> out;
  for (size_t i = from; i < args.size(); ++i) {
    std::string a = args[i];
    BR_CHECK(a.rfind("--", 0) == 0, "bertrazor {}: unexpected argument '{}'", command, a);
    std::string name = a.substr(2), value;
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    bool is_switch = std::find(switches.begin(), switches.end(), name) != switches.end();
    bool is_known = std::find(known.begin(), known.end(), name) != known.end();
    BR_CHECK(is_switch || is_known, "bertrazor {}: unknown flag --{} (known: --{})", command, name,
             fmt::join(known, ", --"));
    if (is_switch) {
      out[name] = eq == std::string::npos ? "true" : value;
      continue;
    }
    if (eq == std::string::npos) {
      BR_CHECK(i + 1 < args.size(), "bertrazor {}: --{} needs a value", command, name);
      value = args[++i];
    }
    out[name] = value;
  }
  return out;
}

std::string need(const std::map<std::string, std::string>& f, const std::string& k, const char* cmd) {
  auto it = f.find(k);
  BR_CHECK(it != f.end(), "bertrazor {}: --{} is required", cmd, k);
  return it->second;
}

int64_t to_int(const std::string& s, const std::string& flag) {
  try {
    size_t pos = 0;
    int64_t v = std::stoll(s, &pos);
    if (pos == s.size()) return v;
  } catch (const std::exception&) {
  }
  br::fail("--{}: '{}' is not an integer", flag, s);
}

double to_double(const std::string& s, const std::string& flag) {
  try {
    size_t pos = 0;
    double v = std::stod(s, &pos);
    if (pos == s.size()) return v;
  } catch (const std::exception&) {
  }
  br::fail("--{}: '{}' is not a number", flag, s);
}

int cmd_run_glue(const std::string& command, const std::vector<std::string>& args) {
  std::vector<std::string> rest(args.begin() + 1, args.end());
  for (const std::string& a : rest)
    if (a == "--help" || a == "-h") {
      std::fputs(br::usage().c_str(), stdout);
      return 0;
    }
  br::TrainingArgs ta = br::parse_training_args(rest);
  if (command == "train") ta.do_train = true;
  if (command == "eval") ta.do_eval = true;
  if (command == "predict") ta.do_predict = true;
  br::run_glue(ta);
  return 0;
}

int cmd_memory(const std::vector<std::string>& args) {
  auto f = parse_flags(args, 1,
                       {"model_name_or_path", "config_name", "max_seq_length",
                        "per_device_train_batch_size", "backrazor_preset", "prune_ratio",
                        "backrazor_dtype", "backrazor_sites", "device", "seed", "num_labels"},
                       {"json", "per_layer"}, "memory");
  std::string cfg_path;
  std::string model_dir;
  if (f.count("config_name")) {
    cfg_path = f["config_name"];
  } else {
    model_dir = br::resolve_model_path(need(f, "model_name_or_path", "memory"));
    cfg_path = (fs::path(model_dir) / "config.json").string();
  }
  br::BertConfig c = br::BertConfig::from_json_file(cfg_path);
  if (f.count("num_labels")) c.set_num_labels(to_int(f["num_labels"], "num_labels"));
  br::Device dev = f.count("device") ? br::device_from_name(f["device"])
                                     : (br::cuda_available() ? br::Device::cuda : br::Device::cpu);
  int64_t S = f.count("max_seq_length") ? to_int(f["max_seq_length"], "max_seq_length") : 128;
  int64_t B = f.count("per_device_train_batch_size")
                  ? to_int(f["per_device_train_batch_size"], "per_device_train_batch_size")
                  : 8;
  std::string preset = f.count("backrazor_preset") ? f["backrazor_preset"] : "none";
  double ratio = f.count("prune_ratio") ? to_double(f["prune_ratio"], "prune_ratio") : 0.8;
  std::string vd = f.count("backrazor_dtype") ? f["backrazor_dtype"] : "fp16";
  BR_CHECK(vd == "fp16" || vd == "fp32", "--backrazor_dtype must be fp16 or fp32, got '{}'", vd);
  uint64_t seed = f.count("seed") ? uint64_t(to_int(f["seed"], "seed")) : 42;

  br::BertForSequenceClassification model(c, dev, br::DType::f32);
  if (!model_dir.empty() && fs::exists(fs::path(model_dir) / "model.safetensors"))
    br::load_safetensors_weights(model, (fs::path(model_dir) / "model.safetensors").string(), seed);
  else
    model.init_weights(seed);
  model.policy() = br::BackRazorPolicy::preset(preset, ratio, vd == "fp32" ? br::DType::f32 : br::DType::f16);
  std::string sites = f.count("backrazor_sites") ? f["backrazor_sites"] : "";
  model.policy().apply_overrides(sites);
  br::MemoryReport r = br::measure_training_step(model, B, S, seed);
  if (f.count("json")) {
    nlohmann::json j = br::memory_report_json(r);
    j["config"] = cfg_path;
    j["preset"] = preset;
    j["prune_ratio"] = ratio;
    j["backrazor_dtype"] = vd;
    j["backrazor_sites"] = sites;
    j["device"] = std::string(br::device_name(dev));
    std::puts(j.dump().c_str());
  } else {
    std::printf("model %s, batch %lld, seq %lld, preset %s (prune_ratio %g, %s values)%s%s, device %s\n\n",
                cfg_path.c_str(), (long long)B, (long long)S, preset.c_str(), ratio, vd.c_str(),
                sites.empty() ? "" : " with ", sites.c_str(),
                std::string(br::device_name(dev)).c_str());
    std::fputs(br::format_memory_table(r, f.count("per_layer") != 0).c_str(), stdout);
  }
  return 0;
}

int cmd_init(const std::vector<std::string>& args) {
  auto f = parse_flags(args, 1, {"config_name", "vocab_file", "output_dir", "seed", "num_labels"}, {},
                       "init");
  br::BertConfig c = br::BertConfig::from_json_file(need(f, "config_name", "init"));
  if (f.count("num_labels")) c.set_num_labels(to_int(f["num_labels"], "num_labels"));
  std::string out = need(f, "output_dir", "init");
  uint64_t seed = f.count("seed") ? uint64_t(to_int(f["seed"], "seed")) : 42;
  br::BertForSequenceClassification model(c, br::Device::cpu, br::DType::f32);
  model.init_weights(seed);
  br::save_pretrained(model, out);
  if (f.count("vocab_file")) {
    BR_CHECK(fs::exists(f["vocab_file"]), "bertrazor init: --vocab_file {} does not exist", f["vocab_file"]);
    fs::copy_file(f["vocab_file"], fs::path(out) / "vocab.txt", fs::copy_options::overwrite_existing);
  }
  std::printf("wrote a randomly initialised model (seed %llu) to %s\n", (unsigned long long)seed,
              out.c_str());
  return 0;
}

int cmd_info() {
  std::printf("bertrazor 0.1.0\ncuda built: %s\ncuda devices: %d\n", br::cuda_built() ? "yes" : "no",
              br::cuda_device_count());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  br::retain_freed_host_memory();
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  try {
    const std::string& c = args[0];
    if (c == "train" || c == "eval" || c == "predict") return cmd_run_glue(c, args);
    if (c == "memory") return cmd_memory(args);
    if (c == "init") return cmd_init(args);
    if (c == "info") return cmd_info();
    if (c == "launch") return br::launch_main({args.begin() + 1, args.end()});
    std::fprintf(stderr, "bertrazor: unknown command '%s'\n\n%s", c.c_str(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bertrazor: error: %s\n", e.what());
    return 1;
  }
}
