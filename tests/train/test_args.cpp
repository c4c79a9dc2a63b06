// run_glue / HfArgumentParser parsing rules (spec §1) and TrainingArguments.__post_init__.
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "core/error.h"
#include "train/args.h"

using namespace br;
using Catch::Contains;

namespace {

std::vector<std::string> base(std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {"--model_name_or_path", "bert", "--output_dir", "/tmp/out",
                                   "--task_name", "RTE"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

TrainingArgs parse(std::vector<std::string> extra) { return parse_training_args(base(extra), std::nullopt); }

std::string error_of(const std::vector<std::string>& argv) {
  try {
    parse_training_args(argv, std::nullopt);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("args: HF defaults", "[train][args]") {
  TrainingArgs a = parse({});
  CHECK(a.task_name == std::optional<std::string>("rte"));  // lower-cased
  CHECK(a.max_seq_length == 128);
  CHECK(a.pad_to_max_length);
  CHECK(a.per_device_train_batch_size == 8);
  CHECK(a.learning_rate == 5e-5);
  CHECK(a.adam_beta2 == 0.999);
  CHECK(a.adam_epsilon == 1e-8);
  CHECK(a.max_grad_norm == 1.0);
  CHECK(a.num_train_epochs == 3.0);
  CHECK(a.max_steps == -1);
  CHECK(a.lr_scheduler_type == SchedulerType::linear);
  CHECK(a.logging_steps == 500);
  CHECK(a.save_steps == 500);
  CHECK(a.seed == 42);
  CHECK(a.sampler_seed() == 42);
  CHECK(a.evaluation_strategy == IntervalStrategy::no);
  CHECK(a.logging_strategy == IntervalStrategy::steps);
  CHECK(!a.do_train);
  CHECK(!a.do_eval);
  CHECK(!a.eval_steps);
  CHECK(!a.save_total_limit);
  CHECK(!a.metric_for_best_model);
  CHECK(!a.greater_is_better);
  CHECK(a.optim == OptimizerType::adamw_torch);
  CHECK(a.local_rank == -1);
  CHECK(!a.backRazor);
  CHECK(a.backrazor_preset == "seed");
  CHECK(a.prune_ratio == 0.8);
  CHECK(a.backrazor_dtype == "fp16");
  CHECK(!a.device);
  CHECK(a.attention_dropout);
  CHECK(a.ignored_notes.empty());
}

TEST_CASE("args: the README command", "[train][args]") {
  TrainingArgs a = parse({"--do_train", "--do_eval", "--max_seq_length", "128", "--per_device_train_batch_size",
                          "8", "--learning_rate", "2e-5", "--num_train_epochs", "10", "--evaluation_strategy",
                          "steps", "--save_steps", "100", "--logging_steps", "100", "--save_total_limit", "1",
                          "--load_best_model_at_end", "True", "--metric_for_best_model", "eval_accuracy",
                          "--backRazor", "True", "--seed", "7"});
  CHECK(a.do_train);
  CHECK(a.learning_rate == 2e-5);
  CHECK(a.num_train_epochs == 10.0);
  CHECK(a.evaluation_strategy == IntervalStrategy::steps);
  CHECK(a.eval_steps == std::optional<int64_t>(100));  // from logging_steps
  CHECK(a.save_total_limit == std::optional<int64_t>(1));
  CHECK(a.load_best_model_at_end);
  CHECK(a.best_metric_key() == "eval_accuracy");
  CHECK(a.greater_is_better == std::optional<bool>(true));
  CHECK(a.backRazor);
  CHECK(a.seed == 7);
}

TEST_CASE("args: boolean forms", "[train][args]") {
  CHECK(parse({"--do_train"}).do_train);
  CHECK(parse({"--do_train", "--do_eval"}).do_train);
  CHECK(parse({"--do_train", "--do_eval"}).do_eval);
  for (std::string v : {"yes", "TRUE", "t", "Y", "1", "True"}) CHECK(parse({"--fp16", v, "--device", "cuda"}).fp16);
  for (std::string v : {"no", "False", "F", "n", "0", "NO"}) CHECK(!parse({"--do_train", v}).do_train);
  CHECK(parse({"--do_train=yes"}).do_train);
  CHECK(!parse({"--no_pad_to_max_length"}).pad_to_max_length);
  CHECK(!parse({"--pad_to_max_length", "false"}).pad_to_max_length);
  CHECK(!parse({"--no_attention_dropout"}).attention_dropout);
  CHECK(!parse({"--attention_dropout", "False"}).attention_dropout);
  CHECK(parse({"--greater_is_better", "false", "--metric_for_best_model", "accuracy"}).greater_is_better ==
        std::optional<bool>(false));
  std::string e = error_of(base({"--do_train", "maybe"}));
  CHECK_THAT(e, Contains("--do_train") && Contains("maybe") && Contains("yes/true"));
  // --no_ exists only for bools that default to True.
  CHECK_THAT(error_of(base({"--no_do_train"})), Contains("unrecognized argument --no_do_train"));
  CHECK_THAT(error_of(base({"--no_pad_to_max_length=1"})), Contains("takes no value"));
}

TEST_CASE("args: values, aliases and the = form", "[train][args]") {
  TrainingArgs a = parse({"--eval_strategy=epoch", "--save_strategy", "epoch", "--learning_rate=3e-5",
                          "--max_steps", "-1", "--warmup_ratio", ".06", "--local-rank", "2",
                          "--per-device-eval-batch-size", "32", "--data_seed", "11", "--optim", "adamw_hf",
                          "--device", "cpu", "--lr_scheduler_type", "cosine"});
  CHECK(a.evaluation_strategy == IntervalStrategy::epoch);
  CHECK(a.do_eval);  // forced by the strategy
  CHECK(a.learning_rate == 3e-5);
  CHECK(a.max_steps == -1);
  CHECK(a.warmup_ratio == 0.06);
  CHECK(a.local_rank == 2);
  CHECK(a.per_device_eval_batch_size == 32);
  CHECK(a.sampler_seed() == 11);
  CHECK(a.optim == OptimizerType::adamw_hf);
  CHECK(a.device == std::optional<Device>(Device::cpu));
  CHECK(a.lr_scheduler_type == SchedulerType::cosine);
  // The last occurrence wins, as in argparse.
  CHECK(parse({"--seed", "1", "--seed", "2"}).seed == 2);
  CHECK(parse({"--report_to", "none"}).report_to == std::vector<std::string>{"none"});
  CHECK(parse({"--report_to", "tensorboard", "wandb", "--do_train"}).report_to ==
        std::vector<std::string>{"tensorboard", "wandb"});
}

TEST_CASE("args: errors name the flag and the value", "[train][args]") {
  CHECK_THAT(error_of(base({"--bogus_flag", "1"})), Contains("unrecognized argument --bogus_flag"));
  CHECK_THAT(error_of(base({"stray"})), Contains("unrecognized argument 'stray'"));
  CHECK_THAT(error_of(base({"--seed"})), Contains("--seed: expected one value"));
  CHECK_THAT(error_of(base({"--output_dir", "--do_train"})), Contains("--output_dir: expected one value"));
  CHECK_THAT(error_of(base({"--seed", "4x"})), Contains("--seed: invalid int value '4x'"));
  CHECK_THAT(error_of(base({"--seed", "1.5"})), Contains("--seed: invalid int value '1.5'"));
  CHECK_THAT(error_of(base({"--learning_rate", "fast"})), Contains("--learning_rate: invalid float value 'fast'"));
  CHECK_THAT(error_of(base({"--evaluation_strategy", "sometimes"})),
             Contains("--evaluation_strategy: invalid choice 'sometimes'") && Contains("no, steps, epoch"));
  CHECK_THAT(error_of(base({"--lr_scheduler_type", "cyclic"})), Contains("linear, cosine"));
  CHECK_THAT(error_of(base({"--optim", "adafactor"})), Contains("--optim: 'adafactor' is not supported"));
  CHECK_THAT(error_of(base({"--backrazor_preset", "most"})), Contains("choose from seed, all"));
  CHECK_THAT(error_of(base({"--backrazor_dtype", "int8"})), Contains("choose from fp16, fp32"));
  CHECK_THAT(error_of(base({"--device", "tpu"})), Contains("--device: invalid choice 'tpu'"));
  CHECK_THAT(error_of(base({"--report_to"})), Contains("--report_to: expected at least one value"));
  CHECK_THAT(error_of({"--output_dir", "o", "--task_name", "rte"}),
             Contains("required: --model_name_or_path"));
  CHECK_THAT(error_of({"--task_name", "rte"}), Contains("--model_name_or_path, --output_dir"));
  // Text values become JSON (training_args.json): bytes that are not UTF-8 are refused by name.
  CHECK_THAT(error_of(base({"--logging_dir", "a\xb3"})),
             Contains("--logging_dir: the value is not valid UTF-8 (byte 0xb3 at offset 1)"));
  CHECK_THAT(error_of(base({"--report_to", "none", "\xed\xa0\x80"})), Contains("--report_to: the value is not valid UTF-8"));
  CHECK_THAT(error_of(base({"--output_dir", "caf\xc3"})), Contains("--output_dir: the value is not valid UTF-8"));
  CHECK(parse({"--logging_dir", "caf\xc3\xa9 \xe6\x88\x91"}).logging_dir == "caf\xc3\xa9 \xe6\x88\x91");
}

TEST_CASE("args: post-init rules", "[train][args]") {
  // eval_steps defaults to logging_steps; an explicit 0 also does.
  CHECK(parse({"--evaluation_strategy", "steps", "--logging_steps", "50"}).eval_steps == std::optional<int64_t>(50));
  CHECK(parse({"--evaluation_strategy", "steps", "--eval_steps", "0", "--logging_steps", "7"}).eval_steps ==
        std::optional<int64_t>(7));
  CHECK(parse({"--evaluation_strategy", "steps", "--eval_steps", "30"}).eval_steps == std::optional<int64_t>(30));
  CHECK_THAT(error_of(base({"--evaluation_strategy", "steps", "--logging_steps", "0", "--logging_strategy", "no"})),
             Contains("non-zero --eval_steps or --logging_steps"));
  // load_best_model_at_end needs matching strategies and save_steps a multiple of eval_steps.
  CHECK_THAT(error_of(base({"--load_best_model_at_end", "--evaluation_strategy", "epoch"})),
             Contains("save and eval strategy to match") && Contains("'epoch'") && Contains("'steps'"));
  CHECK_THAT(error_of(base({"--load_best_model_at_end", "--evaluation_strategy", "steps", "--eval_steps", "30",
                            "--save_steps", "100"})),
             Contains("round multiple") && Contains("100") && Contains("30"));
  TrainingArgs lb = parse({"--load_best_model_at_end", "--evaluation_strategy", "steps", "--eval_steps", "50",
                           "--save_steps", "100"});
  CHECK(lb.metric_for_best_model == std::optional<std::string>("loss"));
  CHECK(lb.best_metric_key() == "eval_loss");
  CHECK(lb.greater_is_better == std::optional<bool>(false));
  CHECK(parse({"--metric_for_best_model", "eval_loss"}).greater_is_better == std::optional<bool>(false));
  CHECK(parse({"--metric_for_best_model", "f1"}).greater_is_better == std::optional<bool>(true));
  CHECK(parse({"--metric_for_best_model", "f1"}).best_metric_key() == "eval_f1");
  // Ranges and combinations.
  CHECK_THAT(error_of(base({"--warmup_ratio", "1.5"})), Contains("--warmup_ratio: must lie in [0,1], got 1.5"));
  CHECK_THAT(error_of(base({"--per_device_train_batch_size", "0"})), Contains("per_device_train_batch_size: must be >= 1"));
  CHECK_THAT(error_of(base({"--gradient_accumulation_steps", "-2"})), Contains("gradient_accumulation_steps"));
  CHECK_THAT(error_of(base({"--prune_ratio", "1"})), Contains("--prune_ratio"));
  // Back Razor policy: preset, ratio, dtype, then the per-site overrides.
  {
    TrainingArgs br = parse({"--backRazor", "True", "--backrazor_preset", "balanced",
                             "--prune_ratio", "0.9", "--backrazor_sites", "q=dense"});
    BackRazorPolicy p = backrazor_policy(br);
    CHECK(p[Site::k].mode == SaveMode::sparse);
    CHECK(p[Site::k].prune_ratio == 0.9);
    CHECK(p[Site::q].mode == SaveMode::dense);
    CHECK(p[Site::ffn2_input].mode == SaveMode::recompute);
    CHECK(backrazor_label(br) == "balanced with q=dense");
    CHECK_FALSE(backrazor_policy(parse({})).any_sparse());
    CHECK(backrazor_label(parse({})) == "off");
  }
  {
    // Dense with only the FFN2 input recomputed.
    BackRazorPolicy p = backrazor_policy(parse({"--backRazor", "--backrazor_preset", "none",
                                                "--backrazor_sites", "ffn2_input=recompute"}));
    CHECK_FALSE(p.any_sparse());
    CHECK(p[Site::ffn2_input].mode == SaveMode::recompute);
  }
  CHECK_THAT(error_of(base({"--backrazor_sites", "q=dense"})), Contains("needs --backRazor True"));
  CHECK_THAT(error_of(base({"--backRazor", "--backrazor_sites", "q=sprse"})),
             Contains("--backrazor_sites:") && Contains("mode 'sprse'"));
  CHECK_THAT(error_of(base({"--backRazor", "--backrazor_preset", "most"})), Contains("balanced"));
  CHECK_THAT(error_of(base({"--fp16", "--bf16"})), Contains("--fp16 and --bf16"));
  CHECK_THAT(error_of(base({"--fp16", "--device", "cpu"})), Contains("--fp16") && Contains("--device cuda"));
  CHECK_THAT(error_of(base({"--task_name", "squad"})), Contains("--task_name: unknown task 'squad'"));
  CHECK_THAT(error_of({"--model_name_or_path", "m", "--output_dir", "o"}), Contains("Need either a GLUE task"));
  CHECK_THAT(error_of({"--model_name_or_path", "m", "--output_dir", "o", "--train_file", "a.tsv"}),
             Contains("csv or a json"));
  CHECK_THAT(error_of({"--model_name_or_path", "m", "--output_dir", "o", "--train_file", "a.csv",
                       "--validation_file", "b.json"}),
             Contains("same extension"));
  CHECK(parse_training_args({"--model_name_or_path", "m", "--output_dir", "o", "--train_file", "a.csv",
                             "--validation_file", "b.csv"},
                            std::nullopt)
            .train_file == std::optional<std::string>("a.csv"));
  CHECK_THAT(error_of(base({"--max_train_samples", "0"})), Contains("--max_train_samples: must be >= 1"));
  CHECK_THAT(error_of(base({"--do_train", "--num_train_epochs", "0"})), Contains("--num_train_epochs"));
  CHECK(parse({"--do_train", "--num_train_epochs", "0", "--max_steps", "10"}).max_steps == 10);
}

TEST_CASE("args: LOCAL_RANK and ~ in output_dir", "[train][args]") {
  CHECK(parse_training_args(base({"--local_rank", "1"}), std::string("3")).local_rank == 3);
  CHECK(parse_training_args(base({"--local_rank", "1"}), std::nullopt).local_rank == 1);
  CHECK_THROWS_WITH(parse_training_args(base(), std::string("x")), Contains("LOCAL_RANK") && Contains("'x'"));
  const char* home = std::getenv("HOME");
  if (home) {
    TrainingArgs a = parse_training_args({"--model_name_or_path", "m", "--output_dir", "~/runs/x", "--task_name",
                                          "rte"},
                                         std::nullopt);
    CHECK(a.output_dir == std::string(home) + "/runs/x");
  }
}

TEST_CASE("args: ignored HF flags are accepted with a note", "[train][args]") {
  TrainingArgs a = parse({"--use_fast_tokenizer", "--fp16_opt_level", "O1", "--report_to", "wandb",
                          "--no_remove_unused_columns", "--dataloader_num_workers", "4"});
  REQUIRE(a.ignored_notes.size() == 5);
  CHECK_THAT(a.ignored_notes[0], Contains("--use_fast_tokenizer: ignored"));
  CHECK_THAT(a.ignored_notes[1], Contains("--fp16_opt_level: ignored"));
  CHECK_THAT(a.ignored_notes[2], Contains("--remove_unused_columns: ignored"));
  // --report_to: tensorboard is built in (and the default); other integrations get a note.
  CHECK_THAT(a.ignored_notes[4], Contains("--report_to wandb: ignored, only tensorboard is built in"));
  CHECK_FALSE(reports_to_tensorboard(a));
  CHECK(reports_to_tensorboard(parse({})));
  CHECK(reports_to_tensorboard(parse({"--report_to", "all"})));
  CHECK_FALSE(reports_to_tensorboard(parse({"--report_to", "none"})));
  CHECK(parse({"--logging_dir", "tb"}).logging_dir == std::optional<std::string>("tb"));
  CHECK_THAT(error_of(base({"--use_fast_tokenizer", "perhaps"})), Contains("--use_fast_tokenizer"));
}

TEST_CASE("args: a single .json argument is a dict of the same fields", "[train][args]") {
  auto dir = std::filesystem::temp_directory_path() / ("br_args_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  std::string good = write("a.json", R"({"model_name_or_path": "bert", "output_dir": "/tmp/o", "task_name": "MRPC",
      "do_train": true, "learning_rate": 2e-05, "num_train_epochs": 3, "evaluation_strategy": "epoch",
      "save_strategy": "epoch", "load_best_model_at_end": true, "metric_for_best_model": "f1",
      "save_total_limit": null, "report_to": ["none"], "seed": 5})");
  TrainingArgs a = parse_training_args({good}, std::nullopt);
  CHECK(a.task_name == std::optional<std::string>("mrpc"));
  CHECK(a.do_train);
  CHECK(a.do_eval);
  CHECK(a.learning_rate == 2e-5);
  CHECK(a.num_train_epochs == 3.0);
  CHECK(a.best_metric_key() == "eval_f1");
  CHECK(a.seed == 5);
  CHECK(a.report_to == std::vector<std::string>{"none"});
  CHECK_THROWS_WITH(parse_training_args({write("b.json", R"({"output_dir": "o", "typo_flag": 1})")}, std::nullopt),
                    Contains("unrecognized argument 'typo_flag'"));
  CHECK_THROWS_WITH(parse_training_args({write("c.json", R"({"seed": 1.5})")}, std::nullopt),
                    Contains("--seed: invalid int value '1.5'"));
  CHECK_THROWS_WITH(parse_training_args({write("d.json", R"({"do_train": 3})")}, std::nullopt),
                    Contains("'do_train' is a boolean"));
  CHECK_THROWS_WITH(parse_training_args({write("e.json", R"([1,2])")}, std::nullopt), Contains("JSON object"));
  CHECK_THROWS_WITH(parse_training_args({write("f.json", "{nope")}, std::nullopt), Contains("invalid JSON"));
  CHECK_THROWS_WITH(parse_training_args({(dir / "missing.json").string()}, std::nullopt), Contains("cannot open"));
  // A round trip through to_json gives the same arguments.
  std::string round = write("g.json", a.to_json().dump());
  TrainingArgs b = parse_training_args({round}, std::nullopt);
  CHECK(b.to_json() == a.to_json());
  std::filesystem::remove_all(dir);
}

TEST_CASE("args: to_json and usage list every flag", "[train][args]") {
  TrainingArgs a = parse({"--device", "cuda", "--save_total_limit", "2"});
  nlohmann::json j = a.to_json();
  CHECK(j["task_name"] == "rte");
  CHECK(j["evaluation_strategy"] == "no");
  CHECK(j["lr_scheduler_type"] == "linear");
  CHECK(j["save_total_limit"] == 2);
  CHECK(j["eval_steps"].is_null());
  CHECK(j["device"] == "cuda");
  CHECK(j["learning_rate"] == 5e-5);
  std::string u = usage();
  for (auto& [key, value] : j.items()) CHECK_THAT(u, Contains("--" + key + " "));
  CHECK_THAT(u, Contains("--no_pad_to_max_length"));
  CHECK_THAT(u, Contains("--eval_strategy"));
  CHECK_THAT(u, Contains("--use_fast_tokenizer"));
}

TEST_CASE("every command parses its own flags and answers --help", "[train][args]") {
  for (Command c : kCommands) {
    INFO(command_name(c));
    CHECK(parse_command_args(c, {"--help"}).help);
    CHECK(parse_command_args(c, {"-h"}).help);
    CHECK_THAT(usage(c), Contains("usage: bertrazor " + std::string(command_name(c))));
  }
  CHECK_THAT(usage(Command::memory), Contains("--backrazor_skip_padding") &&
                                         Contains("{seed,all,balanced,none} ") &&
                                         Contains("(default: seed)"));
  CHECK_THAT(usage(Command::init), Contains("--vocab_file") && !Contains("--learning_rate"));
  CHECK(parse_command_args(Command::train, {"--bogus", "--help"}).help);  // help wins
  CommandArgs m = parse_command_args(Command::memory, {"--config_name", "c.json", "--backRazor",
                                                       "--no_backrazor_skip_padding", "--json"});
  CHECK(m.backrazor_preset == "seed");
  CHECK_FALSE(m.backrazor_skip_padding);
  CHECK(m.json);
  CHECK_THROWS_WITH(parse_command_args(Command::memory, {"--config_name", "c.json", "--learning_rate", "1"}),
                    Contains("--learning_rate: bertrazor memory does not take it"));
  CHECK_THROWS_WITH(parse_command_args(Command::memory, {"--seed", "1"}),
                    Contains("--model_name_or_path or --config_name"));
  CHECK_THROWS_WITH(parse_command_args(Command::memory, {"--config_name", "c", "--backrazor_sites", "q=dense"}),
                    Contains("needs --backRazor True"));
  CommandArgs i = parse_command_args(Command::init, {"--config_name", "c.json", "--output_dir", "o",
                                                     "--num_labels", "3", "--vocab_file", "v.txt"});
  CHECK(i.num_labels == std::optional<int64_t>(3));
  CHECK(i.vocab_file == std::optional<std::string>("v.txt"));
  CHECK_THROWS_WITH(parse_command_args(Command::init, {"--config_name", "c.json"}),
                    Contains("required: --output_dir"));
  CHECK(parse_command_args(Command::train, {"--model_name_or_path", "m", "--output_dir", "o", "--task_name",
                                            "rte", "--do_train"}, std::nullopt).do_train);
  CHECK_THROWS_WITH(parse_command_args(Command::train, {"--model_name_or_path", "m", "--output_dir",
                                                        "o", "--task_name", "rte"}, std::nullopt),
                    Contains("nothing to do"));
  CHECK(parse_command_args(Command::predict, {"--model_name_or_path", "m", "--output_dir", "o",
                                              "--task_name", "rte"}, std::nullopt).do_predict);
  CHECK_THROWS_WITH(parse_command_args(Command::info, {"--seed", "1"}), Contains("unrecognized argument --seed"));
}
