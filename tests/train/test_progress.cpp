// Progress bar / plain lines with a fake clock, and HF's log formats (expected text printed by
// CPython from transformers 4.11's formulas).
#include <catch2/catch.hpp>
#include <cstdio>

#include "core/error.h"
#include "train/progress.h"

using namespace br;
using Catch::Contains;

namespace {

// Captures what a Progress writes, through a memory FILE*.
struct Capture {
  char* buf = nullptr;
  size_t size = 0;
  std::FILE* f = open_memstream(&buf, &size);
  ~Capture() {
    std::fclose(f);
    std::free(buf);
  }
  std::string text() {
    std::fflush(f);
    return std::string(buf, size);
  }
};

}  // namespace

TEST_CASE("Progress: plain lines at an interval with rate and ETA", "[train][progress]") {
  Capture c;
  double t = 100.0;
  {
    Progress p(780, "train", c.f, /*tty=*/false, /*interval=*/30.0, [&] { return t; });
    CHECK(!p.is_tty());
    t = 110;
    p.update(39);  // 10 s: under the interval, nothing printed
    CHECK(c.text().empty());
    t = 130;
    p.update(117);  // 30 s, 3.9 steps/s, 663 left -> 170 s
    CHECK(c.text() == "train: 117/780 steps (15%), 3.90 steps/s, elapsed 0:00:30, eta 0:02:50\n");
    p.write("{'loss': 0.6931, 'learning_rate': 2e-05, 'epoch': 0.1}");
    t = 300;
    p.update(780);
    p.close();
    p.close();
  }
  std::string out = c.text();
  CHECK_THAT(out, Contains("{'loss': 0.6931, 'learning_rate': 2e-05, 'epoch': 0.1}\n"));
  CHECK_THAT(out, Contains("train: 780/780 steps (100%), 3.90 steps/s, elapsed 0:03:20, eta 0:00:00\n"));
  CHECK(std::count(out.begin(), out.end(), '\n') == 3);
}

TEST_CASE("Progress: terminal bar redrawn in place", "[train][progress]") {
  Capture c;
  double t = 0;
  Progress p(100, "", c.f, /*tty=*/true, 30.0, [&] { return t; });
  t = 25;
  p.update(50);  // 2 it/s, 50 left -> 25 s
  CHECK(p.bar_text() == " 50%|█████     | 50/100 [00:25<00:25,  2.00it/s]");
  t = 50;
  p.update(55);  // 1.1 it/s
  CHECK(p.bar_text() == " 55%|█████▌    | 55/100 [00:50<00:40,  1.10it/s]");
  p.write("a log line");
  t = 400;  // slow: 55 steps in 400 s -> s/it
  CHECK_THAT(p.bar_text(), Contains("7.27s/it"));
  p.close();
  std::string out = c.text();
  CHECK_THAT(out, Contains("\r\x1b[Ka log line\n\r 55%|"));
  CHECK(out.back() == '\n');
  CHECK_THROWS_WITH(Progress(-1, "x", c.f, false), Contains("Progress") && Contains("-1"));
}

TEST_CASE("HF log lines and log_history entries", "[train][progress]") {
  TrainerState state;
  state.global_step = 100;
  state.epoch = 1.0 + 22.0 / 78.0;
  auto logs = record_log(state, {{"loss", 0.6931}, {"learning_rate", 2e-5 * (680.0 / 780.0)}});
  CHECK(format_log_line(logs) == "{'loss': 0.6931, 'learning_rate': 1.7435897435897438e-05, 'epoch': 1.28}");
  REQUIRE(state.log_history.size() == 1);
  CHECK(state.log_history[0].dump() == R"({"loss":0.6931,"learning_rate":1.7435897435897438e-05,"epoch":1.28,"step":100})");
  nlohmann::ordered_json fin = {{"train_runtime", 812.3456}, {"total_flos", 1.3e15}, {"train_loss", 0.55}};
  CHECK(format_log_line(fin) == "{'train_runtime': 812.3456, 'train_loss': 0.55}");
  CHECK(format_hms(812.9) == "0:13:32");
  CHECK(format_hms(2 * 86400 + 5) == "2 days, 0:00:05");
}

TEST_CASE("speed_metrics and the metrics block", "[train][progress]") {
  auto m = speed_metrics("train", 812.34567, 2490 * 10, 780);
  CHECK(m.dump() == R"({"train_runtime":812.3457,"train_samples_per_second":30.652,"train_steps_per_second":0.96})");
  CHECK(speed_metrics("eval", 1.23456, 277).dump() == R"({"eval_runtime":1.2346,"eval_samples_per_second":224.371})");
  nlohmann::ordered_json metrics = {{"epoch", 10.0},           {"train_loss", 0.5512345678},
                                    {"train_runtime", 812.3456}, {"train_samples", 2490},
                                    {"train_samples_per_second", 30.652}, {"total_flos", 1.3e15},
                                    {"train_runtime_days", 90061.5}};
  CHECK(format_metrics_block("train", metrics) ==
        "***** train metrics *****\n"
        "  epoch                    =              10.0\n"
        "  total_flos               =         1210719GF\n"
        "  train_loss               =            0.5512\n"
        "  train_runtime            =        0:13:32.34\n"
        "  train_runtime_days       = 1 day, 1:01:01.50\n"
        "  train_samples            =              2490\n"
        "  train_samples_per_second =            30.652\n");
}
