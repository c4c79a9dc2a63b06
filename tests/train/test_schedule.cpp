// LR schedules against transformers.get_scheduler (tests/data/schedule_golden.json, written by
// tools/make_train_golden.py), step arithmetic and cadence against the spec's worked example.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/args.h"
#include "train/schedule.h"

using namespace br;

namespace {

TrainingArgs args_of(std::vector<std::string> extra) {
  std::vector<std::string> argv = {"--model_name_or_path", "m", "--output_dir", "/tmp/o", "--task_name", "rte"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return parse_training_args(argv, std::nullopt);
}

}  // namespace

TEST_CASE("learning_rate_at matches transformers' schedulers step by step", "[train][schedule]") {
  std::ifstream in(std::string(BERTRAZOR_SOURCE_DIR) + "/tests/data/schedule_golden.json");
  REQUIRE(in.good());
  auto g = nlohmann::json::parse(in);
  REQUIRE(g["schedules"].size() >= 10);
  for (const auto& c : g["schedules"]) {
    std::string name = c["name"];
    int64_t total = c["total"], warmup = c["warmup"];
    double base = c["base"];
    TrainingArgs a = args_of({"--lr_scheduler_type", name, "--warmup_steps", std::to_string(warmup),
                              "--learning_rate", fmt::format("{}", base)});
    const auto& lrs = c["lr"];
    for (size_t t = 0; t < lrs.size(); ++t) {
      double want = lrs[t];
      double got = learning_rate_at(a, int64_t(t), total);
      INFO(name << " total " << total << " warmup " << warmup << " step " << t);
      // Linear and constant schedules are the same double operations as Python: exact. The
      // cosine ones go through cos(), where libm and CPython's may differ in the last bit.
      if (name.rfind("cosine", 0) == 0)
        CHECK(std::fabs(got - want) <= 1e-15 * base);
      else
        CHECK(got == want);
    }
  }
}

TEST_CASE("schedule: hand-computed values and warmup_ratio", "[train][schedule]") {
  // Spec §2.9: lr 2e-5, 780 steps, no warmup: the LR logged after step 100 is 2e-5*680/780.
  TrainingArgs a = args_of({"--learning_rate", "2e-5"});
  CHECK(learning_rate_at(a, 100, 780) == 2e-5 * (680.0 / 780.0));
  CHECK(learning_rate_at(a, 0, 780) == 2e-5);
  CHECK(learning_rate_at(a, 780, 780) == 0.0);
  CHECK(learning_rate_at(a, 800, 780) == 0.0);
  // warmup_ratio 0.1 of 95 steps: ceil(9.5) = 10 warmup steps.
  TrainingArgs w = args_of({"--warmup_ratio", "0.1", "--learning_rate", "1"});
  CHECK(w.warmup_steps_for(95) == 10);
  CHECK(learning_rate_at(w, 0, 95) == 0.0);
  CHECK(learning_rate_at(w, 5, 95) == 0.5);
  CHECK(learning_rate_at(w, 10, 95) == 1.0);
  CHECK(learning_rate_at(w, 95, 95) == 0.0);
  // warmup_steps wins over warmup_ratio.
  TrainingArgs both = args_of({"--warmup_ratio", "0.5", "--warmup_steps", "3"});
  CHECK(both.warmup_steps_for(100) == 3);
  TrainingArgs c = args_of({"--lr_scheduler_type", "constant", "--warmup_steps", "5", "--learning_rate", "3e-5"});
  CHECK(learning_rate_at(c, 0, 10) == 3e-5);
  TrainingArgs cos = args_of({"--lr_scheduler_type", "cosine", "--learning_rate", "1"});
  CHECK(learning_rate_at(cos, 50, 100) == Approx(0.5).margin(1e-15));
  CHECK(learning_rate_at(cos, 100, 100) == Approx(0.0).margin(1e-15));
  CHECK_THROWS_WITH(learning_rate_at(a, -1, 10), Catch::Contains("learning_rate_at") && Catch::Contains("-1"));
  TrainingArgs poly = args_of({"--lr_scheduler_type", "polynomial", "--learning_rate", "1e-8"});
  CHECK_THROWS_WITH(learning_rate_at(poly, 1, 10), Catch::Contains("polynomial") && Catch::Contains("lr_end"));
}

TEST_CASE("plan_steps: the spec's worked example and accumulation", "[train][schedule]") {
  // README command: RTE 2490 rows, 4 processes, bs 8, 10 epochs -> 78 batches, 780 steps.
  TrainingArgs a = args_of({"--per_device_train_batch_size", "8", "--num_train_epochs", "10"});
  StepPlan p = plan_steps(a, 2490, 4);
  CHECK(p.batches_per_epoch == 78);
  CHECK(p.steps_per_epoch == 78);
  CHECK(p.max_steps == 780);
  CHECK(p.num_epochs == 10);
  CHECK(p.total_train_batch_size == 32);
  CHECK(p.num_train_samples == 24900.0);  // len(dataset) * epochs, no sampler padding
  // Single process: 312 batches, 3120 steps.
  CHECK(plan_steps(a, 2490, 1).max_steps == 3120);
  // Fractional epochs and accumulation: 2490/8 = 312 batches, /3 = 104 steps, 2.5 epochs.
  TrainingArgs b = args_of({"--gradient_accumulation_steps", "3", "--num_train_epochs", "2.5"});
  p = plan_steps(b, 2490, 1);
  CHECK(p.steps_per_epoch == 104);
  CHECK(p.max_steps == 260);
  CHECK(p.num_epochs == 3);
  CHECK(p.total_train_batch_size == 24);
  CHECK(p.num_train_samples == 6225.0);  // 2490 * 2.5
  // max_steps overrides epochs.
  TrainingArgs m = args_of({"--max_steps", "100", "--num_train_epochs", "50"});
  p = plan_steps(m, 100, 1);  // 13 batches per epoch
  CHECK(p.batches_per_epoch == 13);
  CHECK(p.max_steps == 100);
  CHECK(p.num_epochs == 8);
  CHECK(p.num_train_samples == 800.0);  // max_steps * total_train_batch_size (8)
  // drop_last.
  TrainingArgs d = args_of({"--dataloader_drop_last"});
  CHECK(plan_steps(d, 100, 1).batches_per_epoch == 12);
  CHECK_THROWS_WITH(plan_steps(d, 5, 1), Catch::Contains("plan_steps") && Catch::Contains("drop_last"));
  CHECK_THROWS_WITH(plan_steps(a, 0, 1), Catch::Contains("plan_steps"));
}

TEST_CASE("is_optimizer_step and fractional_epoch follow Trainer.train", "[train][schedule]") {
  // 10 micro-batches, accumulation 4: updates after micro-batches 4 and 8; 9, 10 carry over.
  std::vector<int64_t> updates;
  for (int64_t s = 0; s < 10; ++s)
    if (is_optimizer_step(s, 10, 4)) updates.push_back(s);
  CHECK(updates == std::vector<int64_t>{3, 7});
  // An epoch of 3 micro-batches with accumulation 4: one update at its end.
  CHECK(!is_optimizer_step(1, 3, 4));
  CHECK(is_optimizer_step(2, 3, 4));
  CHECK(fractional_epoch(1, 21, 78) == 1.0 + 22.0 / 78.0);
}

TEST_CASE("cadence: log, evaluate and save after each step (DefaultFlowCallback)", "[train][schedule]") {
  TrainingArgs a = args_of({"--evaluation_strategy", "steps", "--logging_steps", "100", "--save_steps", "100",
                            "--logging_first_step"});
  StepActions s1 = actions_after_step(a, 1, 780);
  CHECK((s1.log && !s1.evaluate && !s1.save && !s1.stop));
  StepActions s100 = actions_after_step(a, 100, 780);
  CHECK((s100.log && s100.evaluate && s100.save && !s100.stop));
  StepActions s780 = actions_after_step(a, 780, 780);
  CHECK((!s780.log && !s780.evaluate && !s780.save && s780.stop));
  // load_best_model_at_end: every eval step saves.
  TrainingArgs b = args_of({"--evaluation_strategy", "steps", "--eval_steps", "50", "--save_steps", "100",
                            "--load_best_model_at_end"});
  CHECK(actions_after_step(b, 50, 1000).save);
  CHECK(!actions_after_step(b, 75, 1000).save);
  TrainingArgs e = args_of({"--evaluation_strategy", "epoch", "--save_strategy", "epoch", "--logging_strategy", "no"});
  CHECK(!actions_after_step(e, 500, 1000).save);
  CHECK(!actions_after_step(e, 500, 1000).log);
  StepActions end = actions_at_epoch_end(e);
  CHECK((end.evaluate && end.save && !end.log));
}
