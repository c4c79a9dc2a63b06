#include "train/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "core/error.h"
#include "train/pyformat.h"

namespace br {

namespace {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// tqdm's "MM:SS", or "H:MM:SS" from an hour on.
std::string tqdm_interval(double s) {
  int64_t t = int64_t(s);
  int64_t h = t / 3600, m = t / 60 % 60, sec = t % 60;
  return h ? fmt::format("{}:{:02d}:{:02d}", h, m, sec) : fmt::format("{:02d}:{:02d}", m, sec);
}

}  // namespace

std::string format_hms(double seconds) {
  int64_t t = int64_t(seconds);
  int64_t days = t / 86400;
  t %= 86400;
  std::string hms = fmt::format("{}:{:02d}:{:02d}", t / 3600, t / 60 % 60, t % 60);
  if (days == 0) return hms;
  return fmt::format("{} day{}, {}", days, days == 1 ? "" : "s", hms);
}

Progress::Progress(int64_t total, std::string description, std::FILE* out, std::optional<bool> tty,
                   double plain_interval_s, std::function<double()> now)
    : total_(total),
      description_(std::move(description)),
      out_(out),
      tty_(tty ? *tty : bool(::isatty(::fileno(out)))),
      interval_(plain_interval_s),
      now_(now ? std::move(now) : std::function<double()>(steady_seconds)) {
  BR_CHECK(total >= 0, "Progress: total must be >= 0, got {}", total);
  start_ = now_();
  last_plain_ = start_;
  if (tty_) draw();
}

Progress::~Progress() {
  try {
    close();
  } catch (...) {
  }
}

double Progress::rate() const {
  double elapsed = now_() - start_;
  return elapsed > 0 ? double(done_) / elapsed : 0.0;
}

std::string Progress::bar_text() const {
  const int width = 10;
  double frac = total_ > 0 ? std::min(1.0, double(done_) / double(total_)) : 1.0;
  static const char* partial[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
  int full = int(frac * width);
  int eighth = int((frac * width - full) * 8);
  std::string bar;
  for (int i = 0; i < full; ++i) bar += "█";
  int used = full;
  if (full < width) {
    bar += eighth ? partial[eighth] : " ";
    ++used;
  }
  bar += std::string(size_t(width - used), ' ');
  double elapsed = now_() - start_;
  double r = rate();
  std::string eta = r > 0 ? tqdm_interval(double(total_ - done_) / r) : "?";
  std::string speed = r <= 0 ? "?it/s" : r >= 1 ? fmt::format("{:5.2f}it/s", r) : fmt::format("{:5.2f}s/it", 1 / r);
  return fmt::format("{}{:3d}%|{}| {}/{} [{}<{}, {}]", description_.empty() ? "" : description_ + ": ",
                     int(frac * 100), bar, done_, total_, tqdm_interval(elapsed), eta, speed);
}

std::string Progress::plain_text() const {
  double elapsed = now_() - start_;
  double r = rate();
  std::string eta = r > 0 ? format_hms(double(total_ - done_) / r) : "?";
  int pct = total_ > 0 ? int(100.0 * double(done_) / double(total_)) : 100;
  return fmt::format("{}: {}/{} steps ({}%), {:.2f} steps/s, elapsed {}, eta {}", description_, done_, total_, pct, r,
                     format_hms(elapsed), eta);
}

void Progress::draw() {
  std::fprintf(out_, "\r%s\x1b[K", bar_text().c_str());
  std::fflush(out_);
}

void Progress::update(int64_t done) {
  if (closed_) return;
  done_ = std::min(done, total_);
  if (tty_) {
    draw();
    return;
  }
  double t = now_();
  if (t - last_plain_ >= interval_ && done_ < total_) {
    last_plain_ = t;
    std::fprintf(out_, "%s\n", plain_text().c_str());
    std::fflush(out_);
  }
}

void Progress::write(const std::string& line) {
  if (tty_ && !closed_) {
    std::fprintf(out_, "\r\x1b[K%s\n", line.c_str());
    draw();
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
  }
}

void Progress::close() {
  if (closed_) return;
  closed_ = true;
  if (tty_) {
    std::fprintf(out_, "\r%s\x1b[K\n", bar_text().c_str());
  } else {
    std::fprintf(out_, "%s\n", plain_text().c_str());
  }
  std::fflush(out_);
}

std::string format_log_line(nlohmann::ordered_json logs) {
  logs.erase("total_flos");
  return python_dict_repr(logs);
}

nlohmann::ordered_json record_log(TrainerState& state, nlohmann::ordered_json logs) {
  BR_CHECK(logs.is_object(), "record_log: logs must be an object, got {}", logs.dump());
  logs["epoch"] = python_round(state.epoch, 2);
  nlohmann::ordered_json entry = logs;
  entry["step"] = state.global_step;
  state.log_history.push_back(entry);
  return logs;
}

nlohmann::ordered_json speed_metrics(const std::string& split, double runtime_s, std::optional<double> num_samples,
                                     std::optional<int64_t> num_steps) {
  nlohmann::ordered_json m;
  m[split + "_runtime"] = python_round(runtime_s, 4);
  if (num_samples) m[split + "_samples_per_second"] = python_round(*num_samples / runtime_s, 3);
  if (num_steps) m[split + "_steps_per_second"] = python_round(double(*num_steps) / runtime_s, 3);
  return m;
}

std::string format_metrics_block(const std::string& split, const nlohmann::ordered_json& metrics) {
  BR_CHECK(metrics.is_object(), "format_metrics_block: {} metrics must be an object", split);
  std::map<std::string, std::string> shown;
  for (auto it = metrics.begin(); it != metrics.end(); ++it) {
    const std::string& k = it.key();
    const auto& v = it.value();
    std::string text;
    if (k.find("_mem_") != std::string::npos && v.is_number()) {
      text = fmt::format("{}MB", int64_t(v.get<double>()) >> 20);
    } else if (k.find("_runtime") != std::string::npos && v.is_number()) {
      double s = v.get<double>();
      int64_t centis = int64_t(std::fabs(s - double(int64_t(s))) * 100);
      text = fmt::format("{}.{:02d}", format_hms(s), centis);
    } else if (k == "total_flos" && v.is_number()) {
      text = fmt::format("{}GF", int64_t(v.get<double>()) >> 30);
    } else if (v.is_number_float()) {
      text = python_float_repr(python_round(v.get<double>(), 4));
    } else if (v.is_string()) {
      text = v.get<std::string>();
    } else {
      text = v.dump();
    }
    shown[k] = text;
  }
  size_t kw = 0, vw = 0;
  for (const auto& [k, v] : shown) {
    kw = std::max(kw, k.size());
    vw = std::max(vw, v.size());
  }
  std::string out = fmt::format("***** {} metrics *****\n", split);
  for (const auto& [k, v] : shown) out += fmt::format("  {:<{}} = {:>{}}\n", k, kw, v, vw);
  return out;
}

}  // namespace br
