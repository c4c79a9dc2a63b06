// Console output of training: a tqdm-like bar with steps/s and ETA on a terminal, plain periodic
// lines otherwise (or with --disable_tqdm), and HF's log formats: str(dict) log lines, the
// "***** split metrics *****" block and speed_metrics.
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "train/checkpoint_io.h"

namespace br {

class Progress {
 public:
  // `tty` unset: isatty(fileno(out)). Plain mode prints a line when `plain_interval_s` has passed
  // since the last one, and at the end. `now` returns seconds (tests inject a fake clock).
  Progress(int64_t total, std::string description, std::FILE* out = stdout, std::optional<bool> tty = std::nullopt,
           double plain_interval_s = 30.0, std::function<double()> now = {});
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void update(int64_t done);           // absolute count of finished steps
  void write(const std::string& line);  // a log line above the bar (tqdm.write)
  void close();                        // final line/bar; idempotent

  bool is_tty() const { return tty_; }
  // "38%|███▊      | 300/780 [01:23<02:13,  3.61it/s]" for the current state.
  std::string bar_text() const;
  // "train: 300/780 steps (38%), 3.61 steps/s, elapsed 0:01:23, eta 0:02:13"
  std::string plain_text() const;

 private:
  double rate() const;  // steps per second since start
  void draw();

  int64_t total_;
  std::string description_;
  std::FILE* out_;
  bool tty_;
  double interval_;
  std::function<double()> now_;
  double start_;
  double last_plain_ = 0;
  int64_t done_ = 0;
  bool closed_ = false;
};

// H:MM:SS (str(timedelta(seconds=int(s))), "1 day, 0:00:00" past a day).
std::string format_hms(double seconds);

// The log line HF prints for a log dict: str(logs) with total_flos removed.
std::string format_log_line(nlohmann::ordered_json logs);

// Trainer.log: adds epoch = round(state.epoch, 2), appends {**logs, "step": global_step} to
// state.log_history, and returns the logs (without step) to print.
nlohmann::ordered_json record_log(TrainerState& state, nlohmann::ordered_json logs);

// speed_metrics(split, start, num_samples, num_steps) with the runtime given: <split>_runtime
// round 4, <split>_samples_per_second and <split>_steps_per_second round 3 (from the unrounded
// runtime).
nlohmann::ordered_json speed_metrics(const std::string& split, double runtime_s,
                                     std::optional<double> num_samples = std::nullopt,
                                     std::optional<int64_t> num_steps = std::nullopt);

// Trainer.log_metrics: "***** <split> metrics *****", then per sorted key
// "  key.ljust(kw) = value.rjust(vw)"; *_runtime as H:MM:SS.cc, total_flos as "<int>>30>GF",
// *_mem_* as "<v>>20>MB", other floats round 4.
std::string format_metrics_block(const std::string& split, const nlohmann::ordered_json& metrics);

}  // namespace br
