// The flags of every `bertrazor` subcommand, read through one table (args.cpp) whose fields each
// name the commands that accept them. `train`: HF run_glue's ModelArguments +
// DataTrainingArguments + TrainingArguments merged into one struct, parsed with HfArgumentParser's
// rules (shared/reference/hf-run-glue-spec.md §1), plus our Back Razor / device flags; `memory`
// takes the subset that shapes a training step, so it measures the step `train` would run.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/device.h"
#include "models/backrazor.h"
#include "train/launch.h"

namespace br {

// The CLI's subcommands, in the order `bertrazor --help` lists them.
enum class Command : uint8_t { train, eval, predict, memory, init, launch, info };
inline constexpr Command kCommands[] = {Command::train,  Command::eval,   Command::predict,
                                        Command::memory, Command::init,   Command::launch,
                                        Command::info};
std::string_view command_name(Command c);
std::optional<Command> command_from_name(std::string_view name);
std::string_view command_summary(Command c);  // one line for `bertrazor --help`

enum class IntervalStrategy : uint8_t { no, steps, epoch };
enum class SchedulerType : uint8_t {
  linear,
  cosine,
  cosine_with_restarts,
  polynomial,
  constant,
  constant_with_warmup
};
// adamw_torch: torch.optim.AdamW (decay first, eps on the corrected sqrt(v)); adamw_hf: 4.11's
// transformers.AdamW (eps on the uncorrected sqrt(v), decay after the update). Spec §2.1.
enum class OptimizerType : uint8_t { adamw_torch, adamw_hf };

std::string_view strategy_name(IntervalStrategy s);
std::string_view scheduler_name(SchedulerType s);
std::string_view optimizer_name(OptimizerType o);

struct TrainingArgs {
  // ModelArguments
  std::string model_name_or_path;  // required
  std::optional<std::string> config_name;
  std::optional<std::string> tokenizer_name;
  std::optional<std::string> cache_dir;

  // DataTrainingArguments
  std::optional<std::string> task_name;  // lower-cased; one of the GLUE tasks
  std::optional<std::string> train_file;
  std::optional<std::string> validation_file;
  std::optional<std::string> test_file;
  std::optional<std::string> data_dir;  // ours: folder with the GLUE TSVs of task_name
  int64_t max_seq_length = 128;
  bool pad_to_max_length = true;
  bool overwrite_cache = false;
  std::optional<int64_t> max_train_samples;
  std::optional<int64_t> max_eval_samples;
  std::optional<int64_t> max_predict_samples;

  // TrainingArguments
  std::string output_dir;  // required; "~" expanded
  bool overwrite_output_dir = false;
  bool do_train = false;
  bool do_eval = false;
  bool do_predict = false;
  IntervalStrategy evaluation_strategy = IntervalStrategy::no;
  int64_t per_device_train_batch_size = 8;
  int64_t per_device_eval_batch_size = 8;
  int64_t gradient_accumulation_steps = 1;
  double learning_rate = 5e-5;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;  // 0 disables clipping
  double num_train_epochs = 3.0;
  int64_t max_steps = -1;  // > 0 overrides num_train_epochs
  SchedulerType lr_scheduler_type = SchedulerType::linear;
  double warmup_ratio = 0.0;
  int64_t warmup_steps = 0;
  IntervalStrategy logging_strategy = IntervalStrategy::steps;
  bool logging_first_step = false;
  int64_t logging_steps = 500;
  IntervalStrategy save_strategy = IntervalStrategy::steps;
  int64_t save_steps = 500;
  std::optional<int64_t> save_total_limit;
  std::string save_on_error = "stop";  // a checkpoint save that fails: "stop" the run or "continue"
  std::optional<int64_t> eval_steps;  // after parsing: set whenever evaluation_strategy == steps
  bool load_best_model_at_end = false;
  std::optional<std::string> metric_for_best_model;  // as given; see best_metric_key()
  std::optional<bool> greater_is_better;              // set after parsing when a metric is set
  int64_t seed = 42;
  std::optional<int64_t> data_seed;
  bool fp16 = false;
  bool bf16 = false;
  bool gradient_checkpointing = false;  // recompute every encoder layer in backward (exact)
  OptimizerType optim = OptimizerType::adamw_torch;
  bool dataloader_drop_last = false;
  int64_t dataloader_num_workers = 0;
  std::optional<std::string> resume_from_checkpoint;
  bool disable_tqdm = false;
  int64_t local_rank = -1;  // LOCAL_RANK in the environment overrides it
  std::optional<int64_t> ddp_bucket_cap_mb;  // gradient all-reduce bucket size; unset: 25 as DDP
  std::vector<std::string> report_to;  // empty: tensorboard (reports_to_tensorboard)
  std::optional<std::string> logging_dir;  // unset: output_dir/runs/<%b%d_%H-%M-%S>_<host>

  // ours
  bool backRazor = false;
  std::string backrazor_preset = "seed";  // seed | all | balanced | none
  double prune_ratio = 0.8;
  std::string backrazor_dtype = "fp16";   // fp16 | fp32
  std::string backrazor_sites;            // per-site overrides (BackRazorPolicy::apply_overrides)
  bool backrazor_skip_padding = true;     // BackRazorPolicy::skip_padding
  std::string backrazor_layers;           // per-layer plans (parse_layer_plans)
  // The byte budget of a training step ("16GiB", parse_byte_size): the memory planner
  // (models/memory_plan.h) picks the plan; conflicts with the flags that pick one by hand.
  std::optional<std::string> max_memory;
  // HF's flag, here computed instead of found by crashing: the largest per-device batch (a divisor
  // of batch x accumulation, <= the batch) whose plan fits --max_memory, with the accumulation
  // raised to keep the effective batch; the eval batch gets its own fit. Needs --max_memory.
  bool auto_find_batch_size = false;
  std::optional<Device> device;           // unset: cuda when available, else cpu
  bool attention_dropout = true;          // false reproduces the reference fork (no probs dropout)
  // Under per-batch padding, each micro-batch runs as groups of similar lengths, each padded to its
  // own longest (split_by_length, train/batch.h); false: one batch padded to its longest, as HF.
  bool split_batch_by_length = true;

  // Flags accepted for compatibility that change nothing here, in the order given, with the note
  // printed for each (e.g. "--report_to: ignored, metrics go to trainer_state.json").
  std::vector<std::string> ignored_notes;

  // "eval_" + metric_for_best_model unless it already starts with "eval_"; empty when unset.
  std::string best_metric_key() const;
  // The seed of the training data order: data_seed when given, else seed.
  int64_t sampler_seed() const { return data_seed ? *data_seed : seed; }
  // warmup_steps when > 0, else ceil(warmup_ratio * total_steps).
  int64_t warmup_steps_for(int64_t total_steps) const;

  // Every field by its flag name, as training_args.json (sorted keys, null for unset optionals).
  nlohmann::json to_json() const;
};

// The flags of the other subcommands beside the run_glue ones (none of them in to_json()).
struct CommandArgs : TrainingArgs {
  Command command = Command::train;
  bool help = false;               // --help or -h was given: print usage(command), run nothing
  std::vector<std::string> given;  // the flags set, by field name, in the order given
  std::optional<int64_t> num_labels;      // memory, init: the config's labels become LABEL_0..n-1
  bool json = false;                      // memory: one JSON object instead of the table
  bool per_layer = false;                 // memory: a row per layer instead of per site
  std::optional<std::string> svg;         // memory: also draw the step's memory to this SVG file
  std::string compare;                    // memory --svg: more plans to draw (memory_svg.h)
  bool plan = false;                      // memory: print --max_memory's plan, run no step
  bool find_max_batch = false;            // memory: the largest batch of each plan kind
  std::optional<std::string> vocab_file;  // init: copied into the model folder
  LaunchOptions launch;                   // launch: its flags; .command is the rest of argv
};

// Parses argv (without the program and command names) with HfArgumentParser's rules, accepting
// only the fields of `command`: `--flag V` and `--flag=V` (dashes or underscores); a bool flag
// alone means true, or takes yes/true/t/y/1/no/false/f/n/0 (any case); `--no_<flag>` for bools
// that default to true; enum values restricted to their choices; a single argument ending in
// ".json" is read as a dict of the same fields (not for launch, whose first non-flag argument
// starts the command it runs). Then the command's checks: TrainingArguments.__post_init__ for
// train/eval/predict (train needs one of --do_train/--do_eval/--do_predict, as run_glue.py; eval
// and predict imply --do_eval/--do_predict); the required flags of memory and init; torchrun's
// rules for launch. With --help or -h among the flags it only sets
// .help. Throws br::Error naming the flag and the value. The first form reads LOCAL_RANK from the
// environment; the second takes it (nullopt: unset).
CommandArgs parse_command_args(Command command, const std::vector<std::string>& argv);
CommandArgs parse_command_args(Command command, const std::vector<std::string>& argv,
                               const std::optional<std::string>& env_local_rank);
// parse_command_args for the single ".json" argument, from the file's text; `path` names it in
// errors (the fuzz target's entry).
CommandArgs parse_command_args_json(Command command, std::string_view text, const std::string& path,
                                    const std::optional<std::string>& env_local_rank);
// run_glue's arguments: parse_command_args(Command::train, ...) without the do_* check.
TrainingArgs parse_training_args(const std::vector<std::string>& argv);
TrainingArgs parse_training_args(const std::vector<std::string>& argv,
                                 const std::optional<std::string>& env_local_rank);

// Whether these arguments write TensorBoard event files: --report_to unset (our default; HF 4.x's
// default was every installed integration, HF 5's is none), or naming tensorboard or all.
bool reports_to_tensorboard(const TrainingArgs& a);

// The device these arguments run on: --device, else cuda when a device answers, else cpu.
Device resolved_device(const TrainingArgs& a);
// The config.json the model is built from: --config_name (a config.json file, or a folder or hub
// id holding one, as AutoConfig takes it), else the one in --model_name_or_path.
std::string config_json_path(const TrainingArgs& a);

// The Back Razor policy these arguments ask for, the one function train and memory both build it
// with: dense without --backRazor, else the preset with --prune_ratio and --backrazor_dtype, then
// --backrazor_sites applied, and --backrazor_skip_padding. backrazor_label says it in words for
// logs ("off", "all", "all with gelu_input=low:fp16", "seed, padding ranked").
BackRazorPolicy backrazor_policy(const TrainingArgs& a);
std::string backrazor_label(const TrainingArgs& a);
// The plan of each of `num_layers` encoder layers: --backrazor_layers (parse_layer_plans; its
// presets take --prune_ratio, --backrazor_dtype, --backrazor_sites and --backrazor_skip_padding)
// over a base of backrazor_policy(a), checkpointed when --gradient_checkpointing. Throws naming
// the flag when --gradient_checkpointing meets a layer plan without a checkpoint.
std::vector<LayerPlan> layer_plans(const TrainingArgs& a, int num_layers);

// `bertrazor <command> --help`: what the command does, then each of its flags with its default.
std::string usage(Command command = Command::train);

}  // namespace br
