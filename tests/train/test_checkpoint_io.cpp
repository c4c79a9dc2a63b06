// Output-directory I/O: atomic writes, checkpoint listing and rotation (HF _sorted_checkpoints /
// _rotate_checkpoints), auto-resume, trainer_state.json and results files in Python's formats.
#include <catch2/catch.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <fstream>

#include "core/error.h"
#include "core/text.h"
#include "train/args.h"
#include "train/checkpoint_io.h"
#include "train/pyformat.h"

using namespace br;
using Catch::Contains;

namespace {

// A fresh empty folder per test, removed at the end.
struct TempDir {
  fs::path path;
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() / fmt::format("br_ckpt_{}_{}", ::getpid(), n++);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
};

void make_checkpoint(const std::string& out, int64_t step) {
  CheckpointWriter w(out, step);
  w.write_file("trainer_state.json", "{}");
  w.commit();
}

std::vector<std::string> names(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const auto& p : paths) out.push_back(fs::path(p).filename().string());
  return out;
}

TrainingArgs args_of(std::vector<std::string> extra) {
  std::vector<std::string> argv = {"--model_name_or_path", "m", "--output_dir", "/tmp/unused", "--task_name", "rte"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return parse_training_args(argv, std::nullopt);
}

}  // namespace

TEST_CASE("pyformat: repr, round and json.dumps as Python writes them", "[train][checkpoint]") {
  // Expected strings printed by CPython 3.11.
  CHECK(python_float_repr(0.6931) == "0.6931");
  CHECK(python_float_repr(2e-05) == "2e-05");
  CHECK(python_float_repr(1.7435897435897438e-05) == "1.7435897435897438e-05");
  CHECK(python_float_repr(10.0) == "10.0");
  CHECK(python_float_repr(1e15) == "1000000000000000.0");
  CHECK(python_float_repr(1e16) == "1e+16");
  CHECK(python_float_repr(0.0001) == "0.0001");
  CHECK(python_float_repr(0.00001) == "1e-05");
  CHECK(python_float_repr(123456.789) == "123456.789");
  CHECK(python_float_repr(-0.5) == "-0.5");
  CHECK(python_float_repr(1.0 / 3.0) == "0.3333333333333333");
  CHECK(python_float_repr(5e-324) == "5e-324");
  CHECK(python_float_repr(1.7976931348623157e308) == "1.7976931348623157e+308");
  CHECK(python_float_repr(2490 * 10 / 812.3456) == "30.651978665238047");
  CHECK(python_float_repr(0.1 + 0.2) == "0.30000000000000004");
  CHECK(python_float_repr(1234567890123456.7) == "1234567890123456.8");
  CHECK(python_float_repr(0.0) == "0.0");
  CHECK(python_float_repr(-INFINITY) == "-inf");
  // round(x, 4) in CPython: [0.6931, 0.0001, 2.675, 0.1235, 1.0001]; round(.., 3) = 30.652.
  CHECK(python_round(0.69314718, 4) == 0.6931);
  CHECK(python_round(0.00005, 4) == 0.0001);
  CHECK(python_round(2.675, 4) == 2.675);
  CHECK(python_round(0.12345, 4) == 0.1235);
  CHECK(python_round(1.00005, 4) == 1.0001);
  CHECK(python_round(2490 * 10 / 812.3456, 3) == 30.652);
  nlohmann::json j = {{"b", {1, 2.5, {{"x", nullptr}}}}, {"a", "h\xc3\xa9\"\n\xf0\x9f\x98\x80"},
                      {"c", nlohmann::json::object()}, {"d", nlohmann::json::array()}};
  CHECK(python_json_dumps(j, 4) ==
        "{\n    \"a\": \"h\\u00e9\\\"\\n\\ud83d\\ude00\",\n    \"b\": [\n        1,\n        2.5,\n        {\n"
        "            \"x\": null\n        }\n    ],\n    \"c\": {},\n    \"d\": []\n}");
  CHECK(python_json_dumps(nlohmann::json{{"b", 1}, {"a", {1.0, true}}}) == "{\"a\": [1.0, true], \"b\": 1}");
  nlohmann::ordered_json d = {{"loss", 0.6931}, {"learning_rate", 2e-05}, {"epoch", 0.1}, {"s", "it's"},
                              {"n", 3},         {"f", true},             {"z", nullptr}};
  CHECK(python_dict_repr(d) ==
        "{'loss': 0.6931, 'learning_rate': 2e-05, 'epoch': 0.1, 's': \"it's\", 'n': 3, 'f': True, 'z': None}");
  CHECK_THROWS_WITH(python_dict_repr(nlohmann::ordered_json::array()), Contains("python_dict_repr"));
}

TEST_CASE("checkpoint names and steps", "[train][checkpoint]") {
  CHECK(checkpoint_name(500) == "checkpoint-500");
  CHECK(checkpoint_path("out", 5) == "out/checkpoint-5");
  CHECK(checkpoint_path("out/", 5) == "out/checkpoint-5");
  CHECK(checkpoint_step("out/checkpoint-42") == std::optional<int64_t>(42));
  CHECK(checkpoint_step("out/checkpoint-42/") == std::optional<int64_t>(42));
  CHECK(!checkpoint_step("out/checkpoint-42.tmp-1-2-3"));
  CHECK(!checkpoint_step("out/checkpoint-"));
  CHECK(!checkpoint_step("out/checkpoint-x1"));
  CHECK(!checkpoint_step("out/mycheckpoint-1"));
  CHECK_THROWS_WITH(checkpoint_name(-1), Contains("checkpoint_name") && Contains("-1"));
}

TEST_CASE("atomic checkpoint writes", "[train][checkpoint]") {
  TempDir out;
  make_checkpoint(out.str(), 100);
  CHECK(fs::exists(out.path / "checkpoint-100" / "trainer_state.json"));
  // A crash mid-write: files in the tmp folder, no rename. The previous checkpoint is intact and
  // the tmp folder is invisible to listing and resume. The crash is real: a child process starts
  // the checkpoint and is killed (SIGKILL) before its writer can commit or clean up, so nothing
  // leaks in this process either.
  {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      try {
        CheckpointWriter w(out.str(), 200, "crashed");
        w.write_file("model.safetensors", "partial");
        ::raise(SIGKILL);
      } catch (...) {
      }
      ::_exit(1);  // only when the write failed: the parent sees exit 1, not SIGKILL
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    CHECK(fs::exists(out.path / "checkpoint-200.tmp-crashed" / "model.safetensors"));
  }
  CHECK(names(sorted_checkpoints(out.str())) == std::vector<std::string>{"checkpoint-100"});
  CHECK(last_checkpoint(out.str()) == std::optional<std::string>(out.str() + "/checkpoint-100"));
  CHECK(read_file(out.path / "checkpoint-100" / "trainer_state.json") == "{}");
  CHECK(remove_stale_checkpoint_tmp(out.str()) == 1);
  CHECK(!fs::exists(out.path / "checkpoint-200.tmp-crashed"));
  // An exception before commit: the destructor removes the tmp folder.
  try {
    CheckpointWriter w(out.str(), 300);
    w.write_file("a", "1");
    throw Error("boom");
  } catch (const Error&) {
  }
  for (const auto& e : fs::directory_iterator(out.path)) CHECK(e.path().filename() == "checkpoint-100");
  // Re-saving an existing step replaces it whole.
  {
    CheckpointWriter w(out.str(), 100);
    w.write_file("new.txt", "x");
    CHECK(w.commit() == out.str() + "/checkpoint-100");
    CHECK_THROWS_WITH(w.commit(), Contains("already committed"));
    CHECK_THROWS_WITH(w.write_file("b", "y"), Contains("already committed"));
  }
  CHECK(fs::exists(out.path / "checkpoint-100" / "new.txt"));
  CHECK(!fs::exists(out.path / "checkpoint-100" / "trainer_state.json"));
  CheckpointWriter w(out.str(), 400);
  CHECK_THROWS_WITH(w.write_file("../escape", "x"), Contains("not a plain file name"));
}

TEST_CASE("write_file_atomic replaces a file whole", "[train][checkpoint]") {
  TempDir out;
  fs::path p = out.path / "f.json";
  write_file_atomic(p, "first");
  write_file_atomic(p, "second, longer");
  CHECK(read_file(p) == "second, longer");
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(out.path)) files += e.is_regular_file();
  CHECK(files == 1);  // no tmp file left behind
  CHECK_THROWS_WITH(write_file_atomic(out.path / "missing" / "f", "x"), Contains("cannot create"));
  CHECK_THROWS_WITH(read_file(out.path / "nope"), Contains("nope") && Contains("cannot open"));
}

TEST_CASE("sorted_checkpoints moves the best to second-to-last", "[train][checkpoint]") {
  TempDir out;
  for (int64_t s : {300, 100, 1000, 200}) make_checkpoint(out.str(), s);  // numeric, not lexical, order
  std::ofstream(out.path / "checkpoint-999") << "a file, not a folder";
  fs::create_directories(out.path / "checkpoint-500.tmp-x");
  CHECK(names(sorted_checkpoints(out.str())) ==
        std::vector<std::string>{"checkpoint-100", "checkpoint-200", "checkpoint-300", "checkpoint-1000"});
  CHECK(names(sorted_checkpoints(out.str(), out.str() + "/checkpoint-100")) ==
        std::vector<std::string>{"checkpoint-200", "checkpoint-300", "checkpoint-100", "checkpoint-1000"});
  CHECK(names(sorted_checkpoints(out.str(), out.str() + "/checkpoint-1000")) ==
        std::vector<std::string>{"checkpoint-100", "checkpoint-200", "checkpoint-300", "checkpoint-1000"});
  CHECK(sorted_checkpoints((out.path / "absent").string()).empty());
}

TEST_CASE("rotation: save_total_limit never deletes the best checkpoint", "[train][checkpoint]") {
  SECTION("limit 1, best older than the newest: keep best and newest") {
    TempDir out;
    for (int64_t s : {100, 200, 300}) make_checkpoint(out.str(), s);
    std::string best = out.str() + "/checkpoint-200";
    auto deleted = rotate_checkpoints(out.str(), 1, best);
    CHECK(names(deleted) == std::vector<std::string>{"checkpoint-100"});
    CHECK(names(sorted_checkpoints(out.str())) == std::vector<std::string>{"checkpoint-200", "checkpoint-300"});
    make_checkpoint(out.str(), 400);
    CHECK(names(rotate_checkpoints(out.str(), 1, best)) == std::vector<std::string>{"checkpoint-300"});
    CHECK(names(sorted_checkpoints(out.str())) == std::vector<std::string>{"checkpoint-200", "checkpoint-400"});
  }
  SECTION("limit 1, the newest is the best: keep only it") {
    TempDir out;
    for (int64_t s : {100, 200, 300}) make_checkpoint(out.str(), s);
    rotate_checkpoints(out.str(), 1, out.str() + "/checkpoint-300");
    CHECK(names(sorted_checkpoints(out.str())) == std::vector<std::string>{"checkpoint-300"});
  }
  SECTION("limit 1 without a best: keep the newest") {
    TempDir out;
    for (int64_t s : {100, 200}) make_checkpoint(out.str(), s);
    rotate_checkpoints(out.str(), 1, std::nullopt);
    CHECK(names(sorted_checkpoints(out.str())) == std::vector<std::string>{"checkpoint-200"});
  }
  SECTION("limit 2 with the oldest best") {
    TempDir out;
    for (int64_t s : {100, 200, 300, 400}) make_checkpoint(out.str(), s);
    auto deleted = rotate_checkpoints(out.str(), 2, out.str() + "/checkpoint-100");
    CHECK(names(deleted) == std::vector<std::string>{"checkpoint-200", "checkpoint-300"});
    CHECK(names(sorted_checkpoints(out.str())) == std::vector<std::string>{"checkpoint-100", "checkpoint-400"});
  }
  SECTION("limit 2 without a best, and no limit") {
    TempDir out;
    for (int64_t s : {100, 200, 300}) make_checkpoint(out.str(), s);
    CHECK(rotate_checkpoints(out.str(), std::nullopt, std::nullopt).empty());
    CHECK(rotate_checkpoints(out.str(), 0, std::nullopt).empty());
    CHECK(names(rotate_checkpoints(out.str(), 2, std::nullopt)) == std::vector<std::string>{"checkpoint-100"});
    CHECK(rotate_checkpoints(out.str(), 2, std::nullopt).empty());
  }
  SECTION("load_best_model_at_end run: best tracked by update_best, rotated after each save") {
    TempDir out;
    TrainingArgs a = args_of({"--evaluation_strategy", "steps", "--eval_steps", "100", "--save_steps", "100",
                              "--load_best_model_at_end", "--metric_for_best_model", "accuracy",
                              "--save_total_limit", "1"});
    TrainerState state;
    std::vector<double> accuracy = {0.60, 0.70, 0.65, 0.70, 0.55};  // best at 200; the tie at 400 keeps 200
    for (size_t i = 0; i < accuracy.size(); ++i) {
      int64_t step = int64_t(i + 1) * 100;
      nlohmann::ordered_json metrics = {{"eval_loss", 0.5}, {"eval_accuracy", accuracy[i]}};
      state.update_best(a, metrics, checkpoint_path(out.str(), step));
      make_checkpoint(out.str(), step);
      rotate_checkpoints(out.str(), a.save_total_limit, state.best_model_checkpoint);
    }
    CHECK(state.best_metric == std::optional<double>(0.70));
    CHECK(state.best_model_checkpoint == std::optional<std::string>(out.str() + "/checkpoint-200"));
    CHECK(names(sorted_checkpoints(out.str())) == std::vector<std::string>{"checkpoint-200", "checkpoint-500"});
  }
}

TEST_CASE("update_best: direction, ties and missing metrics", "[train][checkpoint]") {
  TrainingArgs loss = args_of({"--metric_for_best_model", "loss"});
  TrainerState s;
  CHECK(s.update_best(loss, {{"eval_loss", 0.5}}, "o/checkpoint-1"));
  CHECK(!s.update_best(loss, {{"eval_loss", 0.6}}, "o/checkpoint-2"));
  CHECK(!s.update_best(loss, {{"eval_loss", 0.5}}, "o/checkpoint-3"));
  CHECK(s.update_best(loss, {{"eval_loss", 0.4}}, "o/checkpoint-4"));
  CHECK(s.best_model_checkpoint == std::optional<std::string>("o/checkpoint-4"));
  CHECK_THROWS_WITH(s.update_best(loss, {{"eval_accuracy", 0.4}}, "o/checkpoint-5"),
                    Contains("'eval_loss'") && Contains("eval_accuracy"));
  TrainerState none;
  CHECK(!none.update_best(args_of({}), {{"eval_loss", 0.1}}, "o/checkpoint-1"));
  CHECK(!none.best_metric);
}

TEST_CASE("resume_checkpoint: auto-resume and the non-empty output_dir error", "[train][checkpoint]") {
  TempDir out;
  auto args = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {"--model_name_or_path", "m", "--output_dir", out.str(), "--task_name", "rte",
                                     "--do_train"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return parse_training_args(argv, std::nullopt);
  };
  CHECK(!resume_checkpoint(args({})));  // empty folder
  fs::create_directories(out.path / "checkpoint-7.tmp-dead");
  CHECK(!resume_checkpoint(args({})));  // a stale tmp folder does not count
  std::ofstream(out.path / "notes.txt") << "x";
  CHECK_THROWS_WITH(resume_checkpoint(args({})),
                    Contains("already exists and is not empty") && Contains("--overwrite_output_dir"));
  CHECK(!resume_checkpoint(args({"--overwrite_output_dir"})));
  make_checkpoint(out.str(), 5);
  make_checkpoint(out.str(), 40);
  CHECK(resume_checkpoint(args({})) == std::optional<std::string>(out.str() + "/checkpoint-40"));
  CHECK(!resume_checkpoint(args({"--overwrite_output_dir"})));
  CHECK(resume_checkpoint(args({"--resume_from_checkpoint", out.str() + "/checkpoint-5"})) ==
        std::optional<std::string>(out.str() + "/checkpoint-5"));
  CHECK_THROWS_WITH(resume_checkpoint(args({"--resume_from_checkpoint", out.str() + "/checkpoint-9"})),
                    Contains("can't find a valid checkpoint") && Contains("checkpoint-9"));
}

TEST_CASE("trainer_state.json fields and round trip", "[train][checkpoint]") {
  TrainerState s;
  s.epoch = 1.0 + 22.0 / 78.0;
  s.global_step = 100;
  s.max_steps = 780;
  s.num_train_epochs = 10;
  s.total_flos = 1.3e15;
  s.logging_steps = s.eval_steps = s.save_steps = 100;
  s.train_batch_size = 8;
  s.log_history.push_back({{"loss", 0.6931}, {"learning_rate", 2e-5 * (680.0 / 780.0)}, {"epoch", 1.28}, {"step", 100}});
  s.log_history.push_back({{"eval_loss", 0.68}, {"eval_accuracy", 0.57}, {"epoch", 1.28}, {"step", 100}});
  s.best_metric = 0.57;
  s.best_model_checkpoint = "out/checkpoint-100";
  std::string text = s.to_file_text();
  CHECK(text.back() == '\n');
  CHECK_THAT(text, Contains("{\n  \"best_metric\": 0.57,\n  \"best_model_checkpoint\": \"out/checkpoint-100\",\n"
                            "  \"epoch\": 1.282051282051282,\n"));
  CHECK_THAT(text, Contains("    {\n      \"epoch\": 1.28,\n      \"learning_rate\": 1.7435897435897438e-05,\n"
                            "      \"loss\": 0.6931,\n      \"step\": 100\n    },"));
  CHECK_THAT(text, Contains("\"total_flos\": 1300000000000000.0,"));
  CHECK_THAT(text, Contains("\"is_hyper_param_search\": false"));
  CHECK_THAT(text, Contains("\"trial_params\": null"));
  for (const char* key : {"global_step", "max_steps", "num_train_epochs", "is_local_process_zero",
                          "is_world_process_zero", "trial_name", "logging_steps", "eval_steps", "save_steps",
                          "train_batch_size", "log_history"})
    CHECK_THAT(text, Contains(std::string("\"") + key + "\": "));
  TempDir out;
  write_file_atomic(out.path / "trainer_state.json", text);
  TrainerState r = TrainerState::load(out.path / "trainer_state.json");
  CHECK(r.to_file_text() == text);
  CHECK(r.global_step == 100);
  CHECK(r.log_history.size() == 2);
  write_file_atomic(out.path / "bad.json", "{\"global_step\": \"x\"}");
  CHECK_THROWS_WITH(TrainerState::load(out.path / "bad.json"), Contains("TrainerState::from_json"));
  write_file_atomic(out.path / "bad2.json", "{");
  CHECK_THROWS_WITH(TrainerState::load(out.path / "bad2.json"), Contains("bad2.json") && Contains("invalid JSON"));
}

TEST_CASE("rng_state.json: the resume point round trips, and a bad count is an error naming the file",
          "[train][checkpoint]") {
  const TrainingArgs a = args_of({"--seed", "7"});
  const std::string text = rng_state_text(a, {3, 12}, 40);
  CHECK_THAT(text, Contains("\"seed\": 7") && Contains("\"global_step\": 40"));
  const ResumePoint r = parse_rng_state(text, "ck/rng_state.json");
  CHECK(r.epoch == 3);
  CHECK(r.micro_batches_in_epoch == 12);
  CHECK(parse_rng_state(R"({"epoch": 2.0, "micro_batches_in_epoch": 0})", "x").epoch == 2);
  for (const char* bad : {R"({"epoch": -1, "micro_batches_in_epoch": 0})", R"({"epoch": 1e300, "micro_batches_in_epoch": 0})",
                          R"({"epoch": 0.5, "micro_batches_in_epoch": 0})", R"({"epoch": 0})", R"([0, 0])", "{",
                          R"({"epoch": 0, "micro_batches_in_epoch": 18446744073709551615})"}) {
    INFO(bad);
    CHECK_THROWS_WITH(parse_rng_state(bad, "ck/rng_state.json"), Contains("ck/rng_state.json"));
  }
}

TEST_CASE("save_metrics: results files and the all_results merge", "[train][checkpoint]") {
  TempDir out;
  save_metrics(out.str(), "train",
               {{"train_runtime", 812.3456}, {"train_samples_per_second", 30.652}, {"train_loss", 0.55}, {"epoch", 10.0},
                {"train_samples", 2490}});
  CHECK(read_file(out.path / "train_results.json") ==
        "{\n    \"epoch\": 10.0,\n    \"train_loss\": 0.55,\n    \"train_runtime\": 812.3456,\n"
        "    \"train_samples\": 2490,\n    \"train_samples_per_second\": 30.652\n}");
  save_metrics(out.str(), "eval", {{"eval_loss", 0.68}, {"eval_accuracy", 0.57}, {"epoch", 10.0}});
  save_metrics(out.str(), "eval", {{"eval_loss", 0.7}, {"eval_accuracy", 0.6}, {"epoch", 10.0}});  // mnli-mm overwrites
  nlohmann::json all = nlohmann::json::parse(read_file(out.path / "all_results.json"));
  CHECK(all.size() == 7);
  CHECK(all["eval_loss"] == 0.7);
  CHECK(all["train_loss"] == 0.55);
  CHECK(all["train_samples"] == 2490);
  save_metrics(out.str(), "predict", {{"predict_samples", 3}}, /*combined=*/false);
  CHECK(nlohmann::json::parse(read_file(out.path / "all_results.json")).size() == 7);
  write_file_atomic(out.path / "all_results.json", "[1]");
  CHECK_THROWS_WITH(save_metrics(out.str(), "eval", {{"eval_loss", 1.0}}), Contains("all_results.json"));
}

TEST_CASE("predictions and training args files", "[train][checkpoint]") {
  CHECK(format_predictions(std::vector<int64_t>{0, 1, 1}, {"entailment", "not_entailment"}) ==
        "index\tprediction\n0\tentailment\n1\tnot_entailment\n2\tnot_entailment\n");
  // f"{x:3.3f}" in Python: 3.142, 0.062 (half-even on 0.0625), -0.500, 4.990, 12.346.
  CHECK(format_predictions(std::vector<double>{3.14159, 0.0625, -0.5, double(4.99f), 12.3456}) ==
        "index\tprediction\n0\t3.142\n1\t0.062\n2\t-0.500\n3\t4.990\n4\t12.346\n");
  CHECK_THROWS_WITH(format_predictions(std::vector<int64_t>{2}, {"a", "b"}),
                    Contains("format_predictions") && Contains("label id 2"));
  TempDir out;
  TrainingArgs a = args_of({"--learning_rate", "2e-5"});
  write_training_args(out.path / "training_args.json", a);
  std::string text = read_file(out.path / "training_args.json");
  CHECK_THAT(text, Contains("  \"learning_rate\": 2e-05,\n"));
  CHECK(nlohmann::json::parse(text) == a.to_json());
}

TEST_CASE("verified checkpoints: a manifest written last, checked on resume", "[train][checkpoint][manifest]") {
  TempDir out;
  auto args = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {"--model_name_or_path", "m", "--output_dir", out.str(),
                                     "--task_name", "rte", "--do_train"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return parse_training_args(argv, std::nullopt);
  };
  auto checkpoint = [&](int64_t step) {
    CheckpointWriter w(out.str(), step);
    w.write_file("trainer_state.json", "{\"global_step\": " + std::to_string(step) + "}");
    w.write_file("model.safetensors", std::string(5000, char('a' + step % 7)));
    return fs::path(w.commit());
  };
  const fs::path c10 = checkpoint(10), c20 = checkpoint(20), c30 = checkpoint(30);
  nlohmann::json m = nlohmann::json::parse(read_file((c30 / "manifest.json").string()));
  CHECK(m.at("hash") == "xxh3-128");
  CHECK(m.at("files").size() == 2);
  CHECK(m.at("files").at("model.safetensors").at("bytes") == 5000);
  CHECK(m.at("files").at("model.safetensors").at("xxh3_128") == file_digest(c30 / "model.safetensors"));
  CHECK(verify_checkpoint(c30).kind == CheckpointCheck::intact);
  std::vector<std::string> notes;
  CHECK(resume_checkpoint(args({}), &notes) == std::optional<std::string>(c30.string()));
  CHECK(notes.empty());

  // A flipped bit in the newest: passed over for the next intact one, with a line naming the file.
  std::string bytes = read_file((c30 / "model.safetensors").string());
  bytes[1234] ^= 0x04;
  std::ofstream(c30 / "model.safetensors", std::ios::binary) << bytes;
  CHECK(verify_checkpoint(c30).kind == CheckpointCheck::damaged);
  CHECK_THAT(verify_checkpoint(c30).problem,
             Contains("checkpoint-30/model.safetensors: contents differ"));
  notes.clear();
  CHECK(resume_checkpoint(args({}), &notes) == std::optional<std::string>(c20.string()));
  REQUIRE(notes.size() == 1);
  CHECK_THAT(notes[0], Contains("skipping damaged checkpoint") && Contains("checkpoint-30/model.safetensors"));
  // Named explicitly, a damaged checkpoint is an error.
  CHECK_THROWS_WITH(resume_checkpoint(args({"--resume_from_checkpoint", c30.string()})),
                    Contains("damaged checkpoint") && Contains("model.safetensors"));
  // Truncated, and a file missing.
  fs::resize_file(c20 / "model.safetensors", 100);
  CHECK_THAT(verify_checkpoint(c20).problem, Contains("100 bytes, the manifest says 5000"));
  fs::remove(c10 / "trainer_state.json");
  CHECK_THAT(verify_checkpoint(c10).problem, Contains("checkpoint-10/trainer_state.json: missing"));
  CHECK_THROWS_WITH(resume_checkpoint(args({})), Contains("every checkpoint is damaged"));
  // A broken manifest is damage too; one from before manifests loads with a warning.
  std::ofstream(c20 / "manifest.json") << "{not json";
  CHECK_THAT(verify_checkpoint(c20).problem, Contains("manifest.json: unreadable"));
  fs::remove(c30 / "manifest.json");
  CHECK(verify_checkpoint(c30).kind == CheckpointCheck::legacy);
  notes.clear();
  CHECK(resume_checkpoint(args({}), &notes) == std::optional<std::string>(c30.string()));
  REQUIRE(notes.size() == 1);
  CHECK_THAT(notes[0], Contains("unverified") && Contains("no manifest.json"));
}
