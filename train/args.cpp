#include "train/args.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <utf8proc.h>

#include "core/error.h"
#include "core/text.h"
#include "models/memory_plan.h"
#include "models/model_path.h"
#include "train/glue.h"

namespace br {

using nlohmann::json;

std::string_view command_name(Command c) {
  switch (c) {
    case Command::train: return "train";
    case Command::eval: return "eval";
    case Command::predict: return "predict";
    case Command::memory: return "memory";
    case Command::init: return "init";
    case Command::launch: return "launch";
    case Command::info: return "info";
  }
  return "?";
}

std::optional<Command> command_from_name(std::string_view name) {
  for (Command c : kCommands)
    if (command_name(c) == name) return c;
  return std::nullopt;
}

std::string_view command_summary(Command c) {
  switch (c) {
    case Command::train: return "run_glue.py: --do_train, --do_eval, --do_predict as given; its flags";
    case Command::eval: return "evaluate a model (implies --do_eval); the train flags";
    case Command::predict: return "write predictions for the test split (implies --do_predict); the train flags";
    case Command::memory: return "saved-activation bytes per site and peak memory of the step train would run";
    case Command::init: return "write a randomly initialised model folder from a config.json";
    case Command::launch: return "torchrun-style: start N copies of a command (or run under mpirun)";
    case Command::info: return "what this build supports";
  }
  return "?";
}

std::string_view strategy_name(IntervalStrategy s) {
  switch (s) {
    case IntervalStrategy::no: return "no";
    case IntervalStrategy::steps: return "steps";
    case IntervalStrategy::epoch: return "epoch";
  }
  return "?";
}

std::string_view scheduler_name(SchedulerType s) {
  switch (s) {
    case SchedulerType::linear: return "linear";
    case SchedulerType::cosine: return "cosine";
    case SchedulerType::cosine_with_restarts: return "cosine_with_restarts";
    case SchedulerType::polynomial: return "polynomial";
    case SchedulerType::constant: return "constant";
    case SchedulerType::constant_with_warmup: return "constant_with_warmup";
  }
  return "?";
}

std::string_view optimizer_name(OptimizerType o) {
  switch (o) {
    case OptimizerType::adamw_torch: return "adamw_torch";
    case OptimizerType::adamw_hf: return "adamw_hf";
  }
  return "?";
}

std::string TrainingArgs::best_metric_key() const {
  if (!metric_for_best_model) return "";
  const std::string& m = *metric_for_best_model;
  return m.rfind("eval_", 0) == 0 ? m : "eval_" + m;
}

int64_t TrainingArgs::warmup_steps_for(int64_t total_steps) const {
  if (warmup_steps > 0) return warmup_steps;
  return int64_t(std::ceil(double(total_steps) * warmup_ratio));
}

namespace {

// ---- the field table ----

// Command sets, one bit per Command.
using Commands = unsigned;
constexpr Commands bit(Command c) { return 1u << unsigned(c); }
constexpr Commands kRunGlue = bit(Command::train) | bit(Command::eval) | bit(Command::predict);
constexpr Commands kMemory = bit(Command::memory);
constexpr Commands kInit = bit(Command::init);
constexpr Commands kLaunch = bit(Command::launch);

// Python's string_to_bool (hf_argparser.py).
bool parse_bool(const std::string& flag, const std::string& v) {
  std::string l = ascii_lower(v);
  if (l == "yes" || l == "true" || l == "t" || l == "y" || l == "1") return true;
  if (l == "no" || l == "false" || l == "f" || l == "n" || l == "0") return false;
  fail("--{}: expected a boolean (yes/true/t/y/1 or no/false/f/n/0), got '{}'", flag, v);
}

// A text flag's value as given, when it is UTF-8: training_args.json and the ranks' flag check
// write every value as JSON, which cannot hold other bytes.
const std::string& utf8_value(const std::string& v, const std::string& flag) {
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(v.data());
  for (size_t i = 0; i < v.size();) {
    utf8proc_int32_t cp;
    const utf8proc_ssize_t n = utf8proc_iterate(p + i, utf8proc_ssize_t(v.size() - i), &cp);
    if (n <= 0) fail("{}: the value is not valid UTF-8 (byte 0x{:02x} at offset {})", flag, p[i], i);
    i += size_t(n);
  }
  return v;
}

// One command-line field: how to set it from a string, reset it (JSON null), and read it back
// (run_glue fields only: what training_args.json holds), and which commands accept it.
struct Field {
  std::string name;
  std::string help;
  std::string default_text;
  Commands commands = kRunGlue;
  bool is_bool = false;
  bool default_true = false;  // gets a --no_<name> form
  bool is_switch = false;     // a bool that takes a value only as --name=V (torchrun's store_true)
  bool is_list = false;
  bool nullable = false;
  std::vector<std::string> choices;
  std::string ignored_note;  // non-empty: accepted for compatibility, no effect
  std::function<void(CommandArgs&, const std::string&)> set;
  std::function<void(CommandArgs&)> reset;
  std::function<json(const TrainingArgs&)> get;

  // Also accepted by `more` / accepted by `only` alone.
  Field also(Commands more) && {
    commands |= more;
    return std::move(*this);
  }
  Field only(Commands c) && {
    commands = c;
    return std::move(*this);
  }
};

std::string fmt_default(double v) { return fmt::format("{}", v); }

// A field stored in member `m` of TrainingArgs (a run_glue flag, in to_json) or of CommandArgs.
template <typename S, typename T>
Field field(std::string name, T S::*m, std::string help) {
  static_assert(std::is_same_v<S, TrainingArgs> || std::is_same_v<S, CommandArgs>);
  Field f;
  f.name = name;
  f.help = std::move(help);
  S defaults;
  const std::string flag = "--" + name;
  if constexpr (std::is_same_v<T, bool>) {
    f.is_bool = true;
    f.default_true = defaults.*m;
    f.default_text = defaults.*m ? "True" : "False";
    f.set = [m, name](CommandArgs& a, const std::string& v) { a.*m = parse_bool(name, v); };
  } else if constexpr (std::is_same_v<T, int64_t>) {
    f.default_text = std::to_string(defaults.*m);
    f.set = [m, flag](CommandArgs& a, const std::string& v) { a.*m = parse_int(v, flag); };
  } else if constexpr (std::is_same_v<T, double>) {
    f.default_text = fmt_default(defaults.*m);
    f.set = [m, flag](CommandArgs& a, const std::string& v) { a.*m = parse_double(v, flag); };
  } else if constexpr (std::is_same_v<T, std::string>) {
    f.default_text = (defaults.*m).empty() ? "required" : defaults.*m;
    f.set = [m, flag](CommandArgs& a, const std::string& v) { a.*m = utf8_value(v, flag); };
  } else if constexpr (std::is_same_v<T, std::optional<int64_t>>) {
    f.nullable = true;
    f.default_text = "None";
    f.set = [m, flag](CommandArgs& a, const std::string& v) { a.*m = parse_int(v, flag); };
  } else if constexpr (std::is_same_v<T, std::optional<std::string>>) {
    f.nullable = true;
    f.default_text = "None";
    f.set = [m, flag](CommandArgs& a, const std::string& v) { a.*m = utf8_value(v, flag); };
  } else if constexpr (std::is_same_v<T, std::optional<bool>>) {
    f.is_bool = true;
    f.nullable = true;
    f.default_text = "None";
    f.set = [m, name](CommandArgs& a, const std::string& v) { a.*m = parse_bool(name, v); };
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    f.is_list = true;
    f.default_text = "[]";
    f.set = [m, flag](CommandArgs& a, const std::string& v) { (a.*m).push_back(utf8_value(v, flag)); };
    f.reset = [m](CommandArgs& a) { (a.*m).clear(); };
  } else {
    static_assert(sizeof(T) == 0, "unsupported field type");
  }
  if constexpr (std::is_same_v<T, std::optional<int64_t>> || std::is_same_v<T, std::optional<std::string>> ||
                std::is_same_v<T, std::optional<bool>>) {
    f.reset = [m](CommandArgs& a) { a.*m = std::nullopt; };
    if constexpr (std::is_same_v<S, TrainingArgs>)
      f.get = [m](const TrainingArgs& a) { return a.*m ? json(*(a.*m)) : json(nullptr); };
  } else if constexpr (std::is_same_v<S, TrainingArgs>) {
    f.get = [m](const TrainingArgs& a) { return json(a.*m); };
  }
  return f;
}

// An enum field: the value must be one of `names`, in the enum's order.
template <typename E>
Field choice_field(std::string name, E TrainingArgs::*m, std::vector<std::string> names,
                   std::string_view (*to_name)(E), std::string help) {
  Field f;
  f.name = name;
  f.help = std::move(help);
  f.choices = names;
  TrainingArgs defaults;
  f.default_text = std::string(to_name(defaults.*m));
  f.set = [m, names, name](CommandArgs& a, const std::string& v) {
    auto it = std::find(names.begin(), names.end(), v);
    if (it == names.end())
      fail("--{}: invalid choice '{}' (choose from {})", name, v, fmt::join(names, ", "));
    a.*m = E(it - names.begin());
  };
  f.get = [m, to_name](const TrainingArgs& a) { return json(std::string(to_name(a.*m))); };
  return f;
}

// A string field restricted to `choices`.
Field string_choice(std::string name, std::string TrainingArgs::*m,
                    std::vector<std::string> choices, std::string help) {
  Field f = field(name, m, std::move(help));
  f.choices = choices;
  f.set = [m, choices, name](CommandArgs& a, const std::string& v) {
    if (std::find(choices.begin(), choices.end(), v) == choices.end())
      fail("--{}: invalid choice '{}' (choose from {})", name, v, fmt::join(choices, ", "));
    a.*m = v;
  };
  return f;
}

// A flag HF accepts that has no effect here: a bool's value is still checked, then a note recorded.
Field ignored(std::string name, bool is_bool, bool default_true, std::string note) {
  Field f;
  f.name = name;
  f.is_bool = is_bool;
  f.default_true = default_true;
  f.help = "accepted for compatibility; " + note;
  f.default_text = "-";
  f.ignored_note = note;
  f.set = [name, is_bool](CommandArgs&, const std::string& v) {
    if (is_bool) parse_bool(name, v);
  };
  return f;
}

// An integer flag of `bertrazor launch`, stored in LaunchOptions and checked against [lo, hi].
Field launch_int(std::string name, int LaunchOptions::*m, int lo, int hi, std::string help) {
  Field f;
  f.name = name;
  f.help = std::move(help);
  f.default_text = std::to_string(LaunchOptions{}.*m);
  f.commands = kLaunch;
  f.set = [m, name, lo, hi](CommandArgs& a, const std::string& v) {
    std::optional<int64_t> x = to_int(v);
    BR_CHECK(x && *x >= lo && *x <= hi, "bertrazor launch: --{} expects an integer in [{}, {}], got '{}'",
             name, lo, hi, v);
    a.launch.*m = int(*x);
  };
  return f;
}

// torchrun's --nproc_per_node: a count, or gpu (one per CUDA device), cpu (one per core), auto.
Field nproc_per_node_field() {
  Field f = launch_int("nproc_per_node", &LaunchOptions::nproc_per_node, 1, 1024,
                       "processes on this node: a number, gpu (one per CUDA device), cpu (one "
                       "per core) or auto (gpu when a CUDA device answers, else cpu)");
  auto count = f.set;
  f.set = [count](CommandArgs& a, const std::string& v) {
    const int cpus = int(std::thread::hardware_concurrency());
    if (v == "gpu") a.launch.nproc_per_node = cuda_device_count();
    else if (v == "cpu") a.launch.nproc_per_node = cpus;
    else if (v == "auto") a.launch.nproc_per_node = cuda_device_count() > 0 ? cuda_device_count() : cpus;
    else count(a, v);
    BR_CHECK(a.launch.nproc_per_node >= 1, "bertrazor launch: --nproc_per_node {} found no device", v);
  };
  return f;
}

Field device_field() {
  Field f;
  f.name = "device";
  f.help = "cpu or cuda";
  f.default_text = "cuda if available, else cpu";
  f.nullable = true;
  f.choices = {"cpu", "cuda"};
  f.set = [](CommandArgs& a, const std::string& v) {
    if (v != "cpu" && v != "cuda") fail("--device: invalid choice '{}' (choose from cpu, cuda)", v);
    a.device = device_from_name(v);
  };
  f.reset = [](CommandArgs& a) { a.device = std::nullopt; };
  f.get = [](const TrainingArgs& a) {
    return a.device ? json(std::string(device_name(*a.device))) : json(nullptr);
  };
  return f;
}

Field optim_field() {
  Field f = choice_field("optim", &TrainingArgs::optim, {"adamw_torch", "adamw_hf"}, optimizer_name,
                         "optimizer: adamw_torch (torch.optim.AdamW) or adamw_hf (4.11 AdamW)");
  auto inner = f.set;
  f.set = [inner](CommandArgs& a, const std::string& v) {
    if (v != "adamw_torch" && v != "adamw_hf")
      fail("--optim: '{}' is not supported; bertrazor implements adamw_torch and adamw_hf", v);
    inner(a, v);
  };
  return f;
}

const std::vector<std::string> kStrategies = {"no", "steps", "epoch"};

// The run_glue flags in HF's order, then ours, then those of memory, init and launch. Long
// because it is the table of every flag, one entry each, not because it holds logic.
const std::vector<Field>& fields() {
  static const std::vector<Field> table = [] {
    std::vector<Field> t;
    using A = TrainingArgs;
    using C = CommandArgs;
    // ModelArguments
    t.push_back(field("model_name_or_path", &A::model_name_or_path,
                      "folder with config.json, weights and vocab.txt").also(kMemory));
    t.push_back(field("config_name", &A::config_name,
                      "config.json (a file, or its folder), if not the model's").also(kMemory | kInit));
    t.push_back(field("tokenizer_name", &A::tokenizer_name, "tokenizer folder, if not the model's"));
    t.push_back(field("cache_dir", &A::cache_dir, "accepted for compatibility; nothing is cached"));
    t.back().ignored_note = "nothing is cached";
    // DataTrainingArguments
    t.push_back(field("task_name", &A::task_name,
                      fmt::format("GLUE task: {}", fmt::join(glue_task_names(), ", "))));
    t.push_back(field("train_file", &A::train_file, "csv or json training file"));
    t.push_back(field("validation_file", &A::validation_file, "csv or json validation file"));
    t.push_back(field("test_file", &A::test_file, "csv or json test file"));
    t.push_back(field("data_dir", &A::data_dir, "folder with the task's GLUE TSV files"));
    t.push_back(field("max_seq_length", &A::max_seq_length,
                      "tokens per example after truncation (clamped to the model's maximum)").also(kMemory));
    t.push_back(field("pad_to_max_length", &A::pad_to_max_length,
                      "pad every example to max_seq_length; false: pad each batch to its longest"));
    t.push_back(field("overwrite_cache", &A::overwrite_cache,
                      "accepted for compatibility; nothing is cached"));
    t.back().ignored_note = "nothing is cached";
    t.push_back(field("max_train_samples", &A::max_train_samples, "keep the first N training rows"));
    t.push_back(field("max_eval_samples", &A::max_eval_samples, "keep the first N evaluation rows"));
    t.push_back(field("max_predict_samples", &A::max_predict_samples, "keep the first N test rows"));
    // TrainingArguments
    t.push_back(field("output_dir", &A::output_dir,
                      "checkpoints and results go here (init: the model folder)").also(kInit));
    t.push_back(field("overwrite_output_dir", &A::overwrite_output_dir,
                      "allow a non-empty output_dir and skip auto-resume (deletes nothing)"));
    t.push_back(field("do_train", &A::do_train, "train"));
    t.push_back(field("do_eval", &A::do_eval, "evaluate on the validation split"));
    t.push_back(field("do_predict", &A::do_predict, "write predictions for the test split"));
    t.push_back(choice_field("evaluation_strategy", &A::evaluation_strategy, kStrategies,
                             strategy_name, "when to evaluate (alias --eval_strategy)"));
    t.push_back(field("per_device_train_batch_size", &A::per_device_train_batch_size,
                      "training batch per process").also(kMemory));
    t.push_back(field("per_device_eval_batch_size", &A::per_device_eval_batch_size,
                      "evaluation batch per process"));
    t.push_back(field("gradient_accumulation_steps", &A::gradient_accumulation_steps,
                      "micro-batches per optimizer step"));
    t.push_back(field("learning_rate", &A::learning_rate, "peak learning rate"));
    t.push_back(field("weight_decay", &A::weight_decay, "AdamW decoupled weight decay"));
    t.push_back(field("adam_beta1", &A::adam_beta1, "AdamW beta1"));
    t.push_back(field("adam_beta2", &A::adam_beta2, "AdamW beta2"));
    t.push_back(field("adam_epsilon", &A::adam_epsilon, "AdamW epsilon"));
    t.push_back(field("max_grad_norm", &A::max_grad_norm, "clip the global gradient L2 norm; 0 disables"));
    t.push_back(field("num_train_epochs", &A::num_train_epochs, "epochs (may be fractional)"));
    t.push_back(field("max_steps", &A::max_steps, "optimizer steps; > 0 overrides num_train_epochs"));
    t.push_back(choice_field("lr_scheduler_type", &A::lr_scheduler_type,
                             {"linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
                              "constant_with_warmup"},
                             scheduler_name, "learning-rate schedule"));
    t.push_back(field("warmup_ratio", &A::warmup_ratio, "warmup as a fraction of the steps"));
    t.push_back(field("warmup_steps", &A::warmup_steps, "warmup steps; > 0 overrides warmup_ratio"));
    t.push_back(choice_field("logging_strategy", &A::logging_strategy, kStrategies, strategy_name,
                             "when to log the training loss"));
    t.push_back(field("logging_first_step", &A::logging_first_step, "also log after step 1"));
    t.push_back(field("logging_steps", &A::logging_steps, "log every N steps"));
    t.push_back(choice_field("save_strategy", &A::save_strategy, kStrategies, strategy_name,
                             "when to write checkpoint-N"));
    t.push_back(field("save_steps", &A::save_steps, "save every N steps"));
    t.push_back(field("save_total_limit", &A::save_total_limit,
                      "keep at most N checkpoints (never the best one)"));
    t.push_back(string_choice("save_on_error", &A::save_on_error, {"stop", "continue"},
                              "a checkpoint save that fails (disk full, I/O error, read-only "
                              "folder): stop the run with the error (nonzero exit), or continue "
                              "training with a warning; either way the earlier checkpoints stay "
                              "intact and the half-written one is removed"));
    t.push_back(field("eval_steps", &A::eval_steps, "evaluate every N steps (default: logging_steps)"));
    t.push_back(field("load_best_model_at_end", &A::load_best_model_at_end,
                      "reload the best checkpoint when training ends"));
    t.push_back(field("metric_for_best_model", &A::metric_for_best_model,
                      "metric that picks the best checkpoint (eval_ prefix optional)"));
    t.push_back(field("greater_is_better", &A::greater_is_better,
                      "default: true unless the metric is a loss"));
    t.push_back(field("seed", &A::seed, "seed for initialisation, dropout and data order")
                    .also(kMemory | kInit));
    t.push_back(field("data_seed", &A::data_seed, "seed for the data order only"));
    t.push_back(field("fp16", &A::fp16, "fp16 mixed precision (CUDA)"));
    t.push_back(field("bf16", &A::bf16, "bf16 mixed precision").also(kMemory));
    t.push_back(field("gradient_checkpointing", &A::gradient_checkpointing,
                      "keep only each encoder layer's input and recompute the layer in backward "
                      "(exact gradients, less memory, about one more forward)").also(kMemory));
    t.push_back(optim_field());
    t.push_back(field("dataloader_drop_last", &A::dataloader_drop_last,
                      "drop the last incomplete training batch"));
    t.push_back(field("dataloader_num_workers", &A::dataloader_num_workers,
                      "accepted for compatibility; data loads in-process"));
    t.back().ignored_note = "data loads in-process";
    t.push_back(field("resume_from_checkpoint", &A::resume_from_checkpoint,
                      "checkpoint folder to resume from, or True: the newest intact checkpoint "
                      "in output_dir (as after a stop by signal)"));
    t.push_back(field("disable_tqdm", &A::disable_tqdm, "plain log lines instead of a progress bar"));
    t.push_back(field("local_rank", &A::local_rank, "local process rank (LOCAL_RANK overrides it)"));
    t.push_back(field("ddp_bucket_cap_mb", &A::ddp_bucket_cap_mb,
                      "gradient all-reduce bucket size in MiB (default 25, as DDP)"));
    t.push_back(field("report_to", &A::report_to,
                      "integrations that get the logs besides trainer_state.json: tensorboard, "
                      "all (= tensorboard here) or none; others are ignored with a note"));
    t.back().default_text = "tensorboard";
    t.push_back(field("logging_dir", &A::logging_dir, "TensorBoard log dir"));
    t.back().default_text = "output_dir/runs/<%b%d_%H-%M-%S>_<hostname>";
    // ours: Back Razor and the device, shared with memory
    t.push_back(field("backRazor", &A::backRazor, "save activations pruned (Back Razor)").also(kMemory));
    t.push_back(string_choice("backrazor_preset", &A::backrazor_preset, {"seed", "all", "balanced", "none"},
                              "which sites are pruned: seed (the reference's), all, balanced "
                              "(all but the GELU input kept in fp16, FFN2 input recomputed, "
                              "pooler/classifier inputs dense), or none (a base for "
                              "--backrazor_sites)").also(kMemory));
    t.push_back(field("prune_ratio", &A::prune_ratio, "fraction of each sample's values dropped").also(kMemory));
    t.push_back(string_choice("backrazor_dtype", &A::backrazor_dtype, {"fp16", "fp32"},
                              "dtype of the kept values").also(kMemory));
    t.push_back(field("backrazor_sites", &A::backrazor_sites,
                      "per-site overrides on the preset, comma-separated: site=dense | "
                      "site=low:fp16|bf16 | site=sparse[:fp16|bf16|fp32][:ratio] | "
                      "ffn2_input=recompute (docs/BACKRAZOR.md)").also(kMemory));
    t.back().default_text = "none";
    t.push_back(field("backrazor_skip_padding", &A::backrazor_skip_padding,
                      "sparse sites keep their top-k among real tokens only, and in the last "
                      "layer's feed-forward block among the [CLS] rows (exact: the other rows have "
                      "no gradient); False ranks padding and every row too, as the reference does")
                      .also(kMemory));
    t.push_back(field("backrazor_layers", &A::backrazor_layers,
                      "per-layer plans, comma-separated RANGE=PLAN with RANGE 3, 0-5 or *, PLAN "
                      "dense, seed, all, balanced, checkpoint or checkpoint+PRESET; other layers "
                      "follow the flags above (docs/BACKRAZOR.md)").also(kMemory));
    t.back().default_text = "none";
    t.push_back(field("max_memory", &A::max_memory,
                      "byte budget of a training step (e.g. 16GiB, 800MB; B, KB/MB/GB 1000-based, "
                      "KiB/MiB/GiB 1024-based): the planner picks dense, else the fewest "
                      "checkpointed layers, else the least damaging Back Razor plan that fits "
                      "(docs/BACKRAZOR.md)").also(kMemory));
    t.back().set = [](CommandArgs& a, const std::string& v) {
      try {
        parse_byte_size(v);
      } catch (const Error& e) {
        fail("--max_memory: {}", e.what());
      }
      a.max_memory = v;
    };
    t.push_back(field("auto_find_batch_size", &A::auto_find_batch_size,
                      "the largest batch whose plan fits --max_memory, computed (not found by "
                      "out-of-memory crashes); raises gradient_accumulation_steps to keep the "
                      "effective batch; the eval batch gets its own fit"));
    t.push_back(device_field().also(kMemory));
    t.push_back(field("attention_dropout", &A::attention_dropout,
                      "dropout on attention probabilities (false: the reference fork)").also(kMemory));
    t.push_back(field("split_batch_by_length", &A::split_batch_by_length,
                      "run each training batch as groups of similar lengths, each padded to its "
                      "own longest, when that costs less (the same gradients, to rounding: every "
                      "example is independent; a sparse site keeps its share of the group's padded "
                      "length); false: one batch padded to its longest, as HF"));
    // HF flags with no effect here.
    t.push_back(ignored("use_fast_tokenizer", true, true,
                        "the tokenizer always follows the fast tokenizer's rules"));
    t.push_back(ignored("model_revision", false, false, "models load from a local folder"));
    t.push_back(ignored("use_auth_token", true, false, "models load from a local folder"));
    t.push_back(ignored("remove_unused_columns", true, true, "only model inputs are ever batched"));
    t.push_back(ignored("fp16_opt_level", false, false, "apex is not used"));
    t.push_back(ignored("run_name", false, false, "there is no experiment tracker"));
    // memory and init
    t.push_back(field("num_labels", &C::num_labels, "classifier outputs, replacing the config's labels")
                    .only(kMemory | kInit));
    t.push_back(field("json", &C::json, "print one JSON object instead of the table").only(kMemory));
    t.push_back(field("per_layer", &C::per_layer, "one row per layer instead of per site").only(kMemory));
    t.push_back(field("svg", &C::svg, "also draw the step's memory (per layer and site, and by "
                                      "category) to this self-contained SVG file").only(kMemory));
    t.push_back(field("compare", &C::compare,
                      "with --svg: more plans measured and drawn beside the flags' own, "
                      "comma-separated: dense, seed, all, balanced, checkpoint, "
                      "checkpoint+PRESET").only(kMemory));
    t.back().default_text = "none";
    t.push_back(field("plan", &C::plan, "print the plan --max_memory chooses and its predicted "
                      "bytes, without running a step").only(kMemory));
    t.push_back(field("find_max_batch", &C::find_max_batch, "print the largest batch (up to "
                      "--per_device_train_batch_size) of each plan kind under --max_memory, "
                      "predicted, without running a step").only(kMemory));
    t.push_back(field("vocab_file", &C::vocab_file, "vocab.txt to copy into the model folder").only(kInit));
    // launch (torchrun's names)
    t.push_back(nproc_per_node_field());
    t.push_back(launch_int("nnodes", &LaunchOptions::nnodes, 1, 65536, "nodes taking part"));
    t.push_back(launch_int("node_rank", &LaunchOptions::node_rank, 0, 65535, "this node's rank"));
    {
      Field f;
      f.name = "master_addr";
      f.help = "address of node 0 (needed with --nnodes > 1)";
      f.default_text = LaunchOptions{}.master_addr;
      f.commands = kLaunch;
      f.set = [](CommandArgs& a, const std::string& v) { a.launch.master_addr = v; };
      t.push_back(f);
    }
    t.push_back(launch_int("master_port", &LaunchOptions::master_port, 1, 65535,
                           "port node 0 listens on"));
    {
      Field f = ignored("standalone", true, false, "one node is always standalone here");
      f.ignored_note.clear();  // torchrun's switch: accepted silently
      f.is_switch = true;
      f.commands = kLaunch;
      f.help = "accepted for torchrun compatibility (a single node needs no rendezvous)";
      f.default_text = "False";
      t.push_back(f);
    }
    return t;
  }();
  return table;
}

std::string normalise(const std::string& name) {
  std::string n = name;
  std::replace(n.begin(), n.end(), '-', '_');
  if (n == "eval_strategy") n = "evaluation_strategy";
  return n;
}

// The field `name` (dashes or underscores) for any command, or nullptr.
const Field* find_any_field(const std::string& name) {
  const std::string n = normalise(name);
  for (const Field& f : fields())
    if (f.name == n) return &f;
  return nullptr;
}

// The field `name` if `command` accepts it, else nullptr.
const Field* find_field(const std::string& name, Command command) {
  const Field* f = find_any_field(name);
  return f && (f->commands & bit(command)) ? f : nullptr;
}

[[noreturn]] void unknown_flag(const std::string& name, Command command) {
  if (find_any_field(name) || (name.rfind("no_", 0) == 0 && find_any_field(name.substr(3))))
    fail("unrecognized argument --{}: bertrazor {} does not take it (see bertrazor {} --help)", name,
         command_name(command), command_name(command));
  fail("unrecognized argument --{} (see bertrazor {} --help for the flags)", name, command_name(command));
}

// ---- parsing ----

// True when `tok` is a value, not a flag: argparse treats "-5" and "-.5" as values.
bool is_value_token(const std::string& tok) {
  if (tok.size() < 2 || tok[0] != '-') return true;
  char c = tok[1];
  return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
}

// Notes that `f` was given (CommandArgs::given, and the note of a flag that changes nothing).
void record(CommandArgs& a, const Field& f) {
  a.given.push_back(f.name);
  if (!f.ignored_note.empty()) a.ignored_notes.push_back("--" + f.name + ": ignored, " + f.ignored_note);
}

void set_field(CommandArgs& a, const Field& f, const std::string& v) {
  f.set(a, v);
  record(a, f);
}

// --flag V / --flag=V / --no_flag pairs; for launch, the first argument that is not a flag starts
// the command it runs (LaunchOptions::command).
void apply_cli(CommandArgs& a, const std::vector<std::string>& argv) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& tok = argv[i];
    if (tok == "--help" || tok == "-h") {
      a.help = true;
      return;
    }
    if (a.command == Command::launch && tok.rfind("--", 0) != 0) {
      a.launch.command.assign(argv.begin() + long(i), argv.end());
      return;
    }
    if (tok.size() < 3 || tok.compare(0, 2, "--") != 0)
      fail("unrecognized argument '{}' (flags start with --; see --help)", tok);
    std::string name = tok.substr(2);
    std::optional<std::string> inline_value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const Field* f = find_field(name, a.command);
    if (!f && name.rfind("no_", 0) == 0) {
      const Field* g = find_field(name.substr(3), a.command);
      if (g && g->is_bool && g->default_true) {
        if (inline_value) fail("--{}: takes no value, got '{}'", name, *inline_value);
        set_field(a, *g, "false");
        continue;
      }
    }
    if (!f) unknown_flag(name, a.command);
    if (f->is_list) {
      if (f->reset) f->reset(a);
      if (inline_value) {
        f->set(a, *inline_value);
      } else {
        size_t n = 0;
        while (i + 1 < argv.size() && is_value_token(argv[i + 1])) {
          f->set(a, argv[++i]);
          ++n;
        }
        if (n == 0) fail("--{}: expected at least one value", f->name);
      }
      record(a, *f);
    } else if (inline_value) {
      set_field(a, *f, *inline_value);
    } else if (f->is_bool) {
      bool has_value = !f->is_switch && i + 1 < argv.size() && is_value_token(argv[i + 1]);
      set_field(a, *f, has_value ? argv[++i] : "true");
    } else {
      if (i + 1 >= argv.size() || !is_value_token(argv[i + 1]))
        fail("--{}: expected one value", f->name);
      set_field(a, *f, argv[++i]);
    }
  }
}

void apply_json(CommandArgs& a, std::string_view text, const std::string& path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", path, e.what());
  }
  if (!j.is_object()) fail("{}: expected a JSON object of flag names to values", path);
  for (auto& [key, v] : j.items()) {
    const Field* f = find_field(key, a.command);
    if (!f) fail("{}: unrecognized argument '{}'", path, key);
    if (v.is_null()) {
      if (!f->nullable) fail("{}: '{}' cannot be null", path, key);
      f->reset(a);
    } else if (v.is_array()) {
      if (!f->is_list) fail("{}: '{}' takes one value, got a list", path, key);
      f->reset(a);
      for (const json& e : v) f->set(a, e.is_string() ? e.get<std::string>() : e.dump());
    } else if (v.is_boolean()) {
      if (!f->is_bool) fail("{}: '{}' is not a boolean, got {}", path, key, v.dump());
      f->set(a, v.get<bool>() ? "true" : "false");
    } else if (v.is_string()) {
      if (f->is_list && f->reset) f->reset(a);
      f->set(a, v.get<std::string>());
    } else if (v.is_number()) {
      if (f->is_bool) fail("{}: '{}' is a boolean, got {}", path, key, v.dump());
      f->set(a, v.dump());
    } else {
      fail("{}: '{}' has an unsupported value {}", path, key, v.dump());
    }
    record(a, *f);
  }
}

std::string extension(const std::string& path) {
  size_t dot = path.rfind('.');
  size_t slash = path.rfind('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  return path.substr(dot + 1);
}

// ---- the checks of each command ----

void require(const std::vector<std::pair<const char*, bool>>& flags) {
  std::vector<std::string> missing;
  for (auto [name, present] : flags)
    if (!present) missing.push_back(std::string("--") + name);
  if (!missing.empty()) fail("the following arguments are required: {}", fmt::join(missing, ", "));
}

void check_positive(const char* name, int64_t v) {
  if (v < 1) fail("--{}: must be >= 1, got {}", name, v);
}

// --max_memory leaves the plan to the planner: the flags that choose one by hand conflict with it.
void check_max_memory(const TrainingArgs& a) {
  if (a.auto_find_batch_size && !a.max_memory)
    fail("--auto_find_batch_size: needs --max_memory SIZE (the budget the batch must fit)");
  if (!a.max_memory) return;
  const std::string& m = *a.max_memory;
  if (a.gradient_checkpointing)
    fail("--gradient_checkpointing: conflicts with --max_memory {} (the planner decides which "
         "layers to checkpoint; drop one of them)", m);
  if (!a.backrazor_layers.empty())
    fail("--backrazor_layers: '{}' conflicts with --max_memory {} (the planner chooses every "
         "layer's plan; drop one of them)", a.backrazor_layers, m);
  if (a.backRazor)
    fail("--backRazor: conflicts with --max_memory {} (the planner uses Back Razor only when no "
         "exact plan fits; --prune_ratio and --backrazor_dtype set its sparse sites)", m);
  if (a.bf16) fail("--bf16: --max_memory {} plans fp32 steps only (its byte model)", m);
}

// The Back Razor flags, as train and memory both check them.
void check_backrazor(const TrainingArgs& a) {
  if (a.prune_ratio < 0 || a.prune_ratio >= 1)
    fail("--prune_ratio: must lie in [0,1), got {}", a.prune_ratio);
  if (!a.backrazor_sites.empty()) {
    if (!a.backRazor) fail("--backrazor_sites: needs --backRazor True");
    try {
      backrazor_policy(a);
    } catch (const Error& e) {
      fail("--backrazor_sites: {}", e.what());
    }
  }
  // The syntax and the conflict with --gradient_checkpointing, before the model's depth is known
  // (layer_plans checks the ranges against it when the model is built).
  if (!a.backrazor_layers.empty()) layer_plans(a, 1 << 16);
  check_max_memory(a);
}

// DataTrainingArguments.__post_init__ (spec §1b): a GLUE task, or csv/json files.
void check_data(TrainingArgs& a) {
  if (a.task_name) {
    if (!find_glue_task(*a.task_name))
      fail("--task_name: unknown task '{}' (choose from {})", *a.task_name,
           fmt::join(glue_task_names(), ", "));
    a.task_name = ascii_lower(*a.task_name);
  } else if (!a.train_file && !a.validation_file) {
    fail("Need either a GLUE task (--task_name) or a training/validation file (--train_file, --validation_file)");
  } else {
    if (a.train_file) {
      std::string e = extension(*a.train_file);
      if (e != "csv" && e != "json")
        fail("--train_file: '{}' should be a csv or a json file", *a.train_file);
    }
    if (a.validation_file) {
      std::string e = extension(*a.validation_file);
      if (e != "csv" && e != "json")
        fail("--validation_file: '{}' should be a csv or a json file", *a.validation_file);
      if (a.train_file && e != extension(*a.train_file))
        fail("--validation_file: '{}' should have the same extension as --train_file '{}'",
             *a.validation_file, *a.train_file);
    }
  }
}

void check_ranges(const TrainingArgs& a) {
  check_positive("per_device_train_batch_size", a.per_device_train_batch_size);
  check_positive("per_device_eval_batch_size", a.per_device_eval_batch_size);
  check_positive("gradient_accumulation_steps", a.gradient_accumulation_steps);
  check_positive("max_seq_length", a.max_seq_length);
  for (auto [name, v] : {std::pair{"max_train_samples", a.max_train_samples},
                         std::pair{"max_eval_samples", a.max_eval_samples},
                         std::pair{"max_predict_samples", a.max_predict_samples},
                         std::pair{"ddp_bucket_cap_mb", a.ddp_bucket_cap_mb}})
    if (v && *v < 1) fail("--{}: must be >= 1, got {}", name, *v);
  if (a.learning_rate < 0) fail("--learning_rate: must be >= 0, got {}", a.learning_rate);
  if (a.num_train_epochs < 0) fail("--num_train_epochs: must be >= 0, got {}", a.num_train_epochs);
  if (a.do_train && a.max_steps <= 0 && a.num_train_epochs <= 0)
    fail("--num_train_epochs: must be > 0 when --max_steps is not set, got {}", a.num_train_epochs);
  if (a.warmup_steps < 0) fail("--warmup_steps: must be >= 0, got {}", a.warmup_steps);
  if (a.warmup_ratio < 0 || a.warmup_ratio > 1)
    fail("--warmup_ratio: must lie in [0,1], got {}", a.warmup_ratio);
}

// TrainingArguments.__post_init__'s strategy rules: evaluation, logging, saving, the best model.
void check_strategies(TrainingArgs& a) {
  if (a.evaluation_strategy != IntervalStrategy::no) a.do_eval = true;
  if (a.evaluation_strategy == IntervalStrategy::steps && (!a.eval_steps || *a.eval_steps == 0)) {
    if (a.logging_steps <= 0)
      fail("evaluation strategy steps requires either a non-zero --eval_steps or --logging_steps");
    a.eval_steps = a.logging_steps;
  }
  if (a.eval_steps && *a.eval_steps < 0) fail("--eval_steps: must be >= 0, got {}", *a.eval_steps);
  if (a.logging_strategy == IntervalStrategy::steps && a.logging_steps <= 0)
    fail("logging strategy steps requires a non-zero --logging_steps, got {}", a.logging_steps);
  if (a.save_strategy == IntervalStrategy::steps && a.save_steps < 0)
    fail("--save_steps: must be >= 0, got {}", a.save_steps);

  if (a.load_best_model_at_end) {
    if (a.evaluation_strategy != a.save_strategy)
      fail("--load_best_model_at_end requires the save and eval strategy to match, but found "
           "evaluation strategy '{}' and save strategy '{}'",
           strategy_name(a.evaluation_strategy), strategy_name(a.save_strategy));
    if (a.evaluation_strategy == IntervalStrategy::steps && a.save_steps % *a.eval_steps != 0)
      fail("--load_best_model_at_end requires the saving steps to be a round multiple of the "
           "evaluation steps, but found --save_steps {}, which is not a round multiple of "
           "--eval_steps {}",
           a.save_steps, *a.eval_steps);
    if (!a.metric_for_best_model) a.metric_for_best_model = "loss";
  }
  if (a.metric_for_best_model && !a.greater_is_better) {
    const std::string& m = *a.metric_for_best_model;
    a.greater_is_better = !(m == "loss" || m == "eval_loss");
  }
}

// TrainingArguments / DataTrainingArguments __post_init__ (spec §1, §1b).
void check_run_glue(TrainingArgs& a, const std::optional<std::string>& env_local_rank) {
  require({{"model_name_or_path", !a.model_name_or_path.empty()}, {"output_dir", !a.output_dir.empty()}});
  if (env_local_rank && !env_local_rank->empty())
    a.local_rank = parse_int(*env_local_rank, "local_rank (from LOCAL_RANK)");
  if (a.output_dir[0] == '~' && (a.output_dir.size() == 1 || a.output_dir[1] == '/')) {
    const char* home = std::getenv("HOME");
    if (home) a.output_dir = std::string(home) + a.output_dir.substr(1);
  }
  check_data(a);
  check_ranges(a);
  check_backrazor(a);
  check_strategies(a);
  for (const std::string& r : a.report_to)
    if (r != "none" && r != "all" && r != "tensorboard")
      a.ignored_notes.push_back("--report_to " + r + ": ignored, only tensorboard is built in");
  if (a.fp16 && a.bf16) fail("--fp16 and --bf16 cannot both be set");
  if (a.fp16 && a.device == Device::cpu)
    fail("--fp16: fp16 mixed precision needs --device cuda (got --device cpu)");
}

void check_memory(CommandArgs& a) {
  if (a.model_name_or_path.empty() && !a.config_name)
    fail("bertrazor memory: needs --model_name_or_path or --config_name");
  check_positive("per_device_train_batch_size", a.per_device_train_batch_size);
  check_positive("max_seq_length", a.max_seq_length);
  if (a.num_labels) check_positive("num_labels", *a.num_labels);
  check_backrazor(a);
  if (a.plan && !a.max_memory) fail("--plan: needs --max_memory SIZE (the budget to plan for)");
  if (a.find_max_batch && !a.max_memory)
    fail("--find_max_batch: needs --max_memory SIZE (the budget the batches must fit)");
  if (!a.backRazor && !a.max_memory)
    for (const std::string& g : a.given)
      if (g.rfind("backrazor_", 0) == 0 || g == "prune_ratio")
        a.ignored_notes.push_back("--" + g + ": no effect without --backRazor True, as in train; "
                                  "the step is measured with every site dense");
}

void check_init(const CommandArgs& a) {
  require({{"config_name", a.config_name.has_value()}, {"output_dir", !a.output_dir.empty()}});
  if (a.num_labels) check_positive("num_labels", *a.num_labels);
}

void check_launch(const CommandArgs& a) {
  const LaunchOptions& o = a.launch;
  BR_CHECK(!o.command.empty(), "bertrazor launch: no command given (e.g. `bertrazor launch "
           "--nproc_per_node 2 train ...`)");
  BR_CHECK(o.node_rank < o.nnodes, "bertrazor launch: --node_rank {} is not below --nnodes {}",
           o.node_rank, o.nnodes);
  const bool addr_given = std::find(a.given.begin(), a.given.end(), "master_addr") != a.given.end();
  BR_CHECK(o.nnodes == 1 || addr_given,
           "bertrazor launch: --nnodes {} needs --master_addr (the address of node 0)", o.nnodes);
}

// --help or -h anywhere, so that help wins over a mistake in the other flags. Not for launch,
// whose command may ask for its own help (apply_cli sees launch's).
bool asks_for_help(Command command, const std::vector<std::string>& argv) {
  if (command == Command::launch) return false;
  return std::find_if(argv.begin(), argv.end(), [](const std::string& t) {
           return t == "--help" || t == "-h";
         }) != argv.end();
}

// The checks of `command` on the flags applied to `a`.
void check_command(CommandArgs& a, const std::optional<std::string>& env_local_rank) {
  switch (a.command) {
    case Command::train:
    case Command::eval:
    case Command::predict: check_run_glue(a, env_local_rank); break;
    case Command::memory: check_memory(a); break;
    case Command::init: check_init(a); break;
    case Command::launch: check_launch(a); break;
    case Command::info: break;
  }
}

CommandArgs parse(Command command, const std::vector<std::string>& argv,
                  const std::optional<std::string>& env_local_rank) {
  CommandArgs a;
  a.command = command;
  if (asks_for_help(command, argv)) {
    a.help = true;
    return a;
  }
  if (command != Command::launch && argv.size() == 1 && argv[0].ends_with(".json"))
    apply_json(a, read_file(argv[0]), argv[0]);
  else
    apply_cli(a, argv);
  if (a.help) return a;
  check_command(a, env_local_rank);
  return a;
}

// train is run_glue.py: it does what the do_* flags say (an evaluation strategy other than "no"
// sets do_eval, as TrainingArguments does); eval and predict are shorthands.
void check_do_flags(CommandArgs& a) {
  if (a.help) return;
  if (a.command == Command::train && !a.do_train && !a.do_eval && !a.do_predict)
    fail("bertrazor train: nothing to do: give one or more of --do_train, --do_eval, --do_predict "
         "(as run_glue.py takes them)");
  if (a.command == Command::eval) a.do_eval = true;
  if (a.command == Command::predict) a.do_predict = true;
}

// The preset `name` as these flags shape it: --prune_ratio, --backrazor_dtype, --backrazor_sites,
// --backrazor_skip_padding.
BackRazorPolicy preset_from_flags(const TrainingArgs& a, std::string_view name) {
  BackRazorPolicy p = BackRazorPolicy::preset(name, a.prune_ratio,
                                              a.backrazor_dtype == "fp32" ? DType::f32 : DType::f16);
  p.apply_overrides(a.backrazor_sites);
  p.skip_padding = a.backrazor_skip_padding;
  return p;
}

}  // namespace

BackRazorPolicy backrazor_policy(const TrainingArgs& a) {
  if (!a.backRazor) return BackRazorPolicy::preset("none");
  return preset_from_flags(a, a.backrazor_preset);
}

std::vector<LayerPlan> layer_plans(const TrainingArgs& a, int num_layers) {
  const LayerPlan base{backrazor_policy(a), a.gradient_checkpointing};
  std::vector<LayerPlan> plans;
  try {
    plans = parse_layer_plans(a.backrazor_layers, num_layers, base,
                              [&](std::string_view preset) { return preset_from_flags(a, preset); });
  } catch (const Error& e) {
    fail("--backrazor_layers: {}", e.what());
  }
  if (a.gradient_checkpointing)
    for (size_t l = 0; l < plans.size(); ++l)
      if (!plans[l].checkpoint)
        fail("--gradient_checkpointing: --backrazor_layers '{}' runs layer {} without a checkpoint; "
             "write checkpoint+PRESET for it, or drop one of the two flags",
             a.backrazor_layers, l);
  return plans;
}

std::string backrazor_label(const TrainingArgs& a) {
  if (a.max_memory) return "as the --max_memory " + *a.max_memory + " plan says";
  if (!a.backRazor) return "off";
  return (a.backrazor_sites.empty() ? a.backrazor_preset
                                    : a.backrazor_preset + " with " + a.backrazor_sites) +
         (a.backrazor_skip_padding ? "" : ", padding ranked");
}

bool reports_to_tensorboard(const TrainingArgs& a) {
  if (a.report_to.empty()) return true;
  for (const std::string& r : a.report_to)
    if (r == "all" || r == "tensorboard") return true;
  return false;
}

Device resolved_device(const TrainingArgs& a) {
  return a.device ? *a.device : (cuda_available() ? Device::cuda : Device::cpu);
}

std::string config_json_path(const TrainingArgs& a) {
  namespace fs = std::filesystem;
  if (a.config_name) {
    std::error_code ec;
    if (fs::is_regular_file(*a.config_name, ec)) return *a.config_name;
    return (fs::path(resolve_model_path(*a.config_name)) / "config.json").string();
  }
  return (fs::path(resolve_model_path(a.model_name_or_path)) / "config.json").string();
}

CommandArgs parse_command_args(Command command, const std::vector<std::string>& argv,
                               const std::optional<std::string>& env_local_rank) {
  CommandArgs a = parse(command, argv, env_local_rank);
  check_do_flags(a);
  return a;
}

CommandArgs parse_command_args_json(Command command, std::string_view text, const std::string& path,
                                    const std::optional<std::string>& env_local_rank) {
  BR_CHECK(command != Command::launch, "bertrazor launch: takes no args.json ({})", path);
  CommandArgs a;
  a.command = command;
  apply_json(a, text, path);
  check_command(a, env_local_rank);
  check_do_flags(a);
  return a;
}

CommandArgs parse_command_args(Command command, const std::vector<std::string>& argv) {
  const char* env = std::getenv("LOCAL_RANK");
  return parse_command_args(command, argv, env ? std::optional<std::string>(env) : std::nullopt);
}

TrainingArgs parse_training_args(const std::vector<std::string>& argv,
                                 const std::optional<std::string>& env_local_rank) {
  return parse(Command::train, argv, env_local_rank);
}

TrainingArgs parse_training_args(const std::vector<std::string>& argv) {
  const char* env = std::getenv("LOCAL_RANK");
  return parse_training_args(argv, env ? std::optional<std::string>(env) : std::nullopt);
}

nlohmann::json TrainingArgs::to_json() const {
  json j = json::object();
  for (const Field& f : fields())
    if (f.get) j[f.name] = f.get(*this);
  return j;
}

std::string usage(Command command) {
  std::ostringstream o;
  const std::string_view name = command_name(command);
  std::string summary(command_summary(command));
  summary[0] = char(std::toupper(static_cast<unsigned char>(summary[0])));
  switch (command) {
    case Command::train:
    case Command::eval:
    case Command::predict:
      o << "usage: bertrazor " << name << " [--flag VALUE ...] | bertrazor " << name << " args.json\n"
        << summary << ".\n"
        << "Flags follow Hugging Face run_glue.py; booleans take no value or one of\n"
           "yes/true/t/y/1/no/false/f/n/0, and --no_<flag> turns off one that defaults to True.\n\n";
      break;
    case Command::launch:
      o << "usage: bertrazor launch [--flag VALUE ...] <command> [its flags ...]\n"
           "Starts --nproc_per_node copies of `bertrazor <command>` with torchrun's environment\n"
           "(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, ...; docs/DISTRIBUTED.md), or run the\n"
           "command under mpirun instead.\n\n";
      break;
    case Command::memory:
      o << "usage: bertrazor memory [--flag VALUE ...]\n" << summary << ".\n"
        << "It runs one real step (forward, backward, AdamW) on a full-length synthetic batch with\n"
           "the model, policy, precision and step options `bertrazor train` builds from the same\n"
           "flags. --model_name_or_path may be left out when --config_name is given: the weights\n"
           "are then drawn from --seed.\n\n";
      break;
    case Command::init: o << "usage: bertrazor init [--flag VALUE ...]\n" << summary << ".\n\n"; break;
    case Command::info: o << "usage: bertrazor info\n" << summary << ".\n\n"; break;
  }
  for (const Field& f : fields()) {
    if (!(f.commands & bit(command))) continue;
    std::string lhs = "--" + f.name;
    if (!f.choices.empty())
      lhs += fmt::format(" {{{}}}", fmt::join(f.choices, ","));
    else if (f.is_bool && !f.is_switch)
      lhs += " [BOOL]";
    else if (f.is_list)
      lhs += " VALUE...";
    else if (!f.is_bool)
      lhs += " VALUE";
    o << fmt::format("  {:<44} {} (default: {})\n", lhs, f.help, f.default_text);
    if (f.is_bool && f.default_true) o << fmt::format("  {:<44} sets {} to False\n", "--no_" + f.name, f.name);
    if (f.name == "evaluation_strategy") o << fmt::format("  {:<44} alias of --evaluation_strategy\n", "--eval_strategy");
    if (f.name == "local_rank") o << fmt::format("  {:<44} alias of --local_rank\n", "--local-rank");
  }
  o << fmt::format("  {:<44} this text\n", "--help, -h");
  return o.str();
}

}  // namespace br
