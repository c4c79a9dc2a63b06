#include "train/checkpoint_io.h"

#include <xxhash.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <type_traits>

#include <fmt/format.h>

#include "core/error.h"
#include "core/text.h"
#include "models/bert_io.h"
#include "train/pyformat.h"

namespace br {

namespace {

std::string unique_suffix() {
  static std::atomic<uint64_t> counter{0};
  auto ticks = std::chrono::steady_clock::now().time_since_epoch().count();
  return fmt::format("{}-{:x}-{}", ::getpid(), uint64_t(ticks) & 0xffffff, counter++);
}

// fail_checkpoint_writes_after's budget: bytes left, or -1 when off.
std::atomic<int64_t> g_write_budget{-1};

// How many of `want` checkpoint bytes the injected limit lets through (all of them when off).
size_t take_write_budget(size_t want) {
  int64_t left = g_write_budget.load();
  while (left >= 0) {
    const int64_t allowed = std::min<int64_t>(left, int64_t(want));
    if (g_write_budget.compare_exchange_weak(left, left - allowed)) return size_t(allowed);
  }
  return want;
}

[[noreturn]] void fail_injected(const fs::path& path, size_t done, size_t size) {
  fail("{}: write failed after {} of {} bytes: {} (injected)", path.string(), done, size,
       std::strerror(ENOSPC));
}

// Writes and fsyncs `path`; `budgeted`: a checkpoint file, subject to the injected limit.
void write_and_sync(const fs::path& path, std::string_view bytes, bool budgeted = false) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("{}: cannot create: {}", path.string(), std::strerror(errno));
  const size_t allowed = budgeted ? take_write_budget(bytes.size()) : bytes.size();
  size_t done = 0;
  while (done < allowed) {
    ssize_t n = ::write(fd, bytes.data() + done, allowed - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      fail("{}: write failed after {} of {} bytes: {}", path.string(), done, bytes.size(), std::strerror(err));
    }
    done += size_t(n);
  }
  if (allowed < bytes.size()) {
    ::close(fd);
    fail_injected(path, done, bytes.size());
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    fail("{}: fsync failed: {}", path.string(), std::strerror(err));
  }
  if (::close(fd) != 0) fail("{}: close failed: {}", path.string(), std::strerror(errno));
}

// Makes a rename or a new entry in `dir` durable; best effort on file systems without dir fsync.
void sync_dir(const fs::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// "checkpoint-N.tmp-..." -> true.
bool is_checkpoint_tmp(const std::string& name) {
  size_t p = name.find(".tmp-");
  return p != std::string::npos && checkpoint_step(fs::path(name.substr(0, p))).has_value();
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

}  // namespace

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  fs::path tmp = path;
  tmp += ".tmp-" + unique_suffix();
  try {
    write_and_sync(tmp, bytes);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail("{}: cannot rename the temporary file into place: {}", path.string(), ec.message());
  }
  sync_dir(path.parent_path());
}

std::string checkpoint_name(int64_t step) {
  BR_CHECK(step >= 0, "checkpoint_name: step must be >= 0, got {}", step);
  return fmt::format("checkpoint-{}", step);
}

std::string checkpoint_path(const std::string& output_dir, int64_t step) {
  return join_path(output_dir, checkpoint_name(step));
}

std::optional<int64_t> checkpoint_step(const fs::path& path) {
  std::string name = path.filename().string();
  if (name.empty()) name = path.parent_path().filename().string();  // "out/checkpoint-5/"
  const std::string prefix = "checkpoint-";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  int64_t step = 0;
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    if (step > (INT64_MAX - 9) / 10) return std::nullopt;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

std::vector<std::string> sorted_checkpoints(const std::string& output_dir,
                                            const std::optional<std::string>& best_model_checkpoint) {
  std::vector<int64_t> steps;
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return {};
  for (const auto& entry : fs::directory_iterator(output_dir)) {
    if (!entry.is_directory()) continue;
    if (auto s = checkpoint_step(entry.path())) steps.push_back(*s);
  }
  std::sort(steps.begin(), steps.end());
  if (best_model_checkpoint) {
    if (auto best = checkpoint_step(fs::path(*best_model_checkpoint))) {
      auto it = std::find(steps.begin(), steps.end(), *best);
      if (it != steps.end()) {
        for (size_t i = size_t(it - steps.begin()); i + 2 < steps.size(); ++i) std::swap(steps[i], steps[i + 1]);
      }
    }
  }
  std::vector<std::string> out;
  for (int64_t s : steps) out.push_back(checkpoint_path(output_dir, s));
  return out;
}

std::vector<std::string> rotate_checkpoints(const std::string& output_dir,
                                            std::optional<int64_t> save_total_limit,
                                            const std::optional<std::string>& best_model_checkpoint) {
  if (!save_total_limit || *save_total_limit <= 0) return {};
  std::vector<std::string> sorted = sorted_checkpoints(output_dir, best_model_checkpoint);
  int64_t limit = *save_total_limit;
  if (int64_t(sorted.size()) <= limit) return {};
  if (best_model_checkpoint && limit == 1 &&
      checkpoint_step(fs::path(sorted.back())) != checkpoint_step(fs::path(*best_model_checkpoint)))
    limit = 2;
  int64_t n_delete = std::max<int64_t>(0, int64_t(sorted.size()) - limit);
  std::vector<std::string> deleted;
  for (int64_t i = 0; i < n_delete; ++i) {
    std::error_code ec;
    fs::remove_all(sorted[size_t(i)], ec);
    if (ec) fail("rotate_checkpoints: cannot delete {}: {}", sorted[size_t(i)], ec.message());
    deleted.push_back(sorted[size_t(i)]);
  }
  return deleted;
}

std::optional<std::string> last_checkpoint(const std::string& output_dir) {
  std::vector<std::string> sorted = sorted_checkpoints(output_dir);
  if (sorted.empty()) return std::nullopt;
  return sorted.back();
}

int64_t remove_stale_checkpoint_tmp(const std::string& output_dir) {
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return 0;
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(output_dir))
    if (entry.is_directory() && is_checkpoint_tmp(entry.path().filename().string())) stale.push_back(entry.path());
  for (const fs::path& p : stale) {
    fs::remove_all(p, ec);
    if (ec) fail("remove_stale_checkpoint_tmp: cannot delete {}: {}", p.string(), ec.message());
  }
  return int64_t(stale.size());
}

std::string file_digest(const fs::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  BR_CHECK(f, "{}: cannot open: {}", path.string(), std::strerror(errno));
  XXH3_state_t* st = XXH3_createState();
  XXH3_128bits_reset(st);
  std::vector<char> buf(size_t(1) << 20);
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) XXH3_128bits_update(st, buf.data(), n);
  const bool failed = std::ferror(f);
  std::fclose(f);
  const XXH128_hash_t h = XXH3_128bits_digest(st);
  XXH3_freeState(st);
  BR_CHECK(!failed, "{}: read error", path.string());
  return fmt::format("{:016x}{:016x}", h.high64, h.low64);
}

namespace {

constexpr const char* kManifest = "manifest.json";

// {"format": "bertrazor-checkpoint-manifest-1", "hash": "xxh3-128",
//  "files": {name: {"bytes": N, "xxh3_128": hex}}} over every other regular file of dir.
std::string manifest_text(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename() != kManifest)
      names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  nlohmann::ordered_json files = nlohmann::ordered_json::object();
  for (const std::string& n : names)
    files[n] = {{"bytes", int64_t(fs::file_size(dir / n))}, {"xxh3_128", file_digest(dir / n)}};
  nlohmann::ordered_json m = {{"format", "bertrazor-checkpoint-manifest-1"},
                              {"hash", "xxh3-128"},
                              {"files", files}};
  return m.dump(2) + "\n";
}

}  // namespace

std::vector<ManifestEntry> parse_manifest(std::string_view text, const std::string& origin) {
  std::vector<ManifestEntry> out;
  try {
    const nlohmann::json m = nlohmann::json::parse(text);
    BR_CHECK(m.is_object(), "{}: expected a JSON object, got {}", origin, m.type_name());
    if (m.at("hash").get<std::string>() != "xxh3-128") fail("{}: unknown hash {}", origin, m.at("hash").dump());
    const nlohmann::json& files = m.at("files");
    BR_CHECK(files.is_object(), "{}: 'files' must be an object, got {}", origin, files.type_name());
    for (const auto& [file, want] : files.items()) {
      BR_CHECK(!file.empty() && file.find('/') == std::string::npos && file.find('\0') == std::string::npos &&
                   file != "." && file != "..",
               "{}: '{}' is not a plain file name in the checkpoint folder", origin, file);
      BR_CHECK(want.is_object(), "{}: files['{}'] must be an object, got {}", origin, file, want.dump());
      const nlohmann::json& bytes = want.at("bytes");
      BR_CHECK(bytes.is_number_integer() && bytes.get<int64_t>() >= 0,
               "{}: files['{}'].bytes must be a non-negative integer, got {}", origin, file, bytes.dump());
      std::string digest = want.at("xxh3_128").get<std::string>();
      BR_CHECK(digest.size() == 32 && digest.find_first_not_of("0123456789abcdef") == std::string::npos,
               "{}: files['{}'].xxh3_128 must be 32 lower-case hex digits, got '{}'", origin, file, digest);
      out.push_back({file, bytes.get<int64_t>(), std::move(digest)});
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: unreadable: {}", origin, e.what());
  }
  return out;
}

CheckpointCheck verify_checkpoint(const fs::path& dir) {
  const std::string name = dir.filename().string();
  const fs::path mpath = dir / kManifest;
  std::error_code ec;
  if (!fs::exists(mpath, ec)) return {CheckpointCheck::legacy, name + ": no " + kManifest};
  try {
    for (const ManifestEntry& want : parse_manifest(read_file(mpath.string()), name + "/" + kManifest)) {
      const fs::path p = dir / want.file;
      if (!fs::is_regular_file(p, ec))
        return {CheckpointCheck::damaged, name + "/" + want.file + ": missing"};
      const int64_t bytes = int64_t(fs::file_size(p, ec));
      if (bytes != want.bytes)
        return {CheckpointCheck::damaged, fmt::format("{}/{}: {} bytes, the manifest says {}", name,
                                                      want.file, bytes, want.bytes)};
      if (file_digest(p) != want.xxh3_128)
        return {CheckpointCheck::damaged, name + "/" + want.file + ": contents differ from the manifest's digest"};
    }
  } catch (const Error& e) {
    return {CheckpointCheck::damaged, e.what()};
  }
  return {};
}

std::optional<std::string> resume_checkpoint(const TrainingArgs& args, std::vector<std::string>* notes) {
  auto note = [&](const std::string& line) {
    if (notes) notes->push_back(line);
  };
  std::error_code ec;
  // HF run_glue's check first: training into a non-empty folder needs a checkpoint in it.
  // --resume_from_checkpoint True (HF's resume_from_checkpoint=True): the newest intact
  // checkpoint, which must exist; a folder named True is still a folder.
  const std::optional<std::string>& named_flag = args.resume_from_checkpoint;
  const bool newest = named_flag && !fs::is_directory(*named_flag, ec) &&
                      (*named_flag == "True" || *named_flag == "true");
  std::vector<std::string> all;
  if (newest && fs::is_directory(args.output_dir, ec)) all = sorted_checkpoints(args.output_dir);
  if (newest && all.empty())
    fail("--resume_from_checkpoint True: no checkpoint-N folder in --output_dir {}", args.output_dir);
  if (!newest && args.do_train && !args.overwrite_output_dir && fs::is_directory(args.output_dir, ec)) {
    all = sorted_checkpoints(args.output_dir);
    bool empty = true;
    for (const auto& entry : fs::directory_iterator(args.output_dir))
      if (!(entry.is_directory() && is_checkpoint_tmp(entry.path().filename().string()))) empty = false;
    if (all.empty() && !empty)
      fail("Output directory ({}) already exists and is not empty. Use --overwrite_output_dir to overcome.",
           args.output_dir);
  }
  if (args.resume_from_checkpoint && !newest) {
    const std::string& named = *args.resume_from_checkpoint;
    if (!fs::is_directory(named, ec))
      fail("--resume_from_checkpoint: can't find a valid checkpoint at {}", named);
    CheckpointCheck c = verify_checkpoint(named);
    if (c.kind == CheckpointCheck::damaged)
      fail("--resume_from_checkpoint {}: damaged checkpoint: {}", named, c.problem);
    if (c.kind == CheckpointCheck::legacy)
      note("warning: resuming from " + named + " unverified (" + c.problem + ")");
    return named;
  }
  std::string newest_problem;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    CheckpointCheck c = verify_checkpoint(*it);
    if (c.kind == CheckpointCheck::damaged) {
      note("skipping damaged checkpoint " + *it + ": " + c.problem);
      if (newest_problem.empty()) newest_problem = c.problem;
      continue;
    }
    if (c.kind == CheckpointCheck::legacy)
      note("warning: resuming from " + *it + " unverified (" + c.problem + ")");
    return *it;
  }
  if (!all.empty())
    fail("{}: every checkpoint is damaged (newest first: {}); nothing to resume from. Use "
         "--overwrite_output_dir to start over", args.output_dir, newest_problem);
  return std::nullopt;
}

CheckpointWriter::CheckpointWriter(const std::string& output_dir, int64_t step, std::string tag)
    : output_dir_(output_dir), step_(step) {
  if (tag.empty()) tag = unique_suffix();
  tmp_ = fs::path(checkpoint_path(output_dir, step) + ".tmp-" + tag);
  std::error_code ec;
  fs::create_directories(tmp_, ec);
  if (ec) fail("CheckpointWriter: cannot create {}: {}", tmp_.string(), ec.message());
}

CheckpointWriter::~CheckpointWriter() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
}

void fail_checkpoint_writes_after(std::optional<int64_t> bytes) {
  BR_CHECK(!bytes || *bytes >= 0, "fail_checkpoint_writes_after: {} bytes", bytes.value_or(0));
  g_write_budget = bytes.value_or(-1);
}

void CheckpointWriter::write_file(const std::string& name, std::string_view bytes) const {
  BR_CHECK(!committed_, "CheckpointWriter::write_file: {} already committed", checkpoint_name(step_));
  BR_CHECK(!name.empty() && name.find('/') == std::string::npos && name != "." && name != "..",
           "CheckpointWriter::write_file: '{}' is not a plain file name", name);
  write_and_sync(tmp_ / name, bytes, true);
}

void CheckpointWriter::adopt(const std::string& name) const {
  const fs::path p = tmp_ / name;
  std::error_code ec;
  const auto size = size_t(fs::file_size(p, ec));
  if (ec) fail("{}: cannot stat: {}", p.string(), ec.message());
  const size_t allowed = take_write_budget(size);
  if (allowed == size) return;
  fs::resize_file(p, allowed, ec);  // what a full disk would have left
  fail_injected(p, allowed, size);
}

std::string CheckpointWriter::commit() {
  BR_CHECK(!committed_, "CheckpointWriter::commit: {} already committed", checkpoint_name(step_));
  write_and_sync(tmp_ / kManifest, manifest_text(tmp_), true);  // last: it vouches for the rest
  sync_dir(tmp_);
  const std::string final_path = checkpoint_path(output_dir_, step_);
  std::error_code ec;
  fs::path old;
  if (fs::exists(final_path, ec)) {
    // Re-saving a step (after a resume): park the old folder under a tmp name first, so a crash
    // between the two renames leaves either folder, never neither.
    old = fs::path(final_path + ".tmp-old-" + unique_suffix());
    fs::rename(final_path, old, ec);
    if (ec) fail("CheckpointWriter::commit: cannot move the old {} aside: {}", final_path, ec.message());
  }
  fs::rename(tmp_, final_path, ec);
  if (ec) {
    std::error_code back;
    if (!old.empty()) fs::rename(old, final_path, back);  // the old folder returns to its name
    fail("CheckpointWriter::commit: cannot rename {} to {}: {}", tmp_.string(), final_path, ec.message());
  }
  committed_ = true;
  sync_dir(fs::path(final_path).parent_path());
  if (!old.empty()) fs::remove_all(old, ec);
  return final_path;
}

nlohmann::json TrainerState::to_json() const {
  nlohmann::json j;
  j["best_metric"] = best_metric ? nlohmann::json(*best_metric) : nlohmann::json(nullptr);
  j["best_model_checkpoint"] = best_model_checkpoint ? nlohmann::json(*best_model_checkpoint) : nlohmann::json(nullptr);
  j["epoch"] = epoch;
  j["global_step"] = global_step;
  j["is_hyper_param_search"] = false;
  j["is_local_process_zero"] = is_local_process_zero;
  j["is_world_process_zero"] = is_world_process_zero;
  nlohmann::json history = nlohmann::json::array();
  for (const auto& entry : log_history) history.push_back(nlohmann::json::parse(entry.dump()));
  j["log_history"] = history;
  j["max_steps"] = max_steps;
  j["num_train_epochs"] = num_train_epochs;
  j["total_flos"] = total_flos;
  j["trial_name"] = nullptr;
  j["trial_params"] = nullptr;
  j["logging_steps"] = logging_steps;
  j["eval_steps"] = eval_steps;
  j["save_steps"] = save_steps;
  j["train_batch_size"] = train_batch_size;
  return j;
}

namespace {

// A JSON integer that fits int64, or an integral float in its range (Python may write 3.0); nullopt
// for anything else (a cast of 1e300 to int64 is undefined, and 2^64-1 would wrap).
std::optional<int64_t> json_int64(const nlohmann::json& v) {
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > uint64_t(INT64_MAX)) return std::nullopt;
    return int64_t(v.get<uint64_t>());
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  if (!v.is_number_float()) return std::nullopt;
  const double d = v.get<double>();
  if (!std::isfinite(d) || d != std::trunc(d) || std::fabs(d) >= 9.2e18) return std::nullopt;
  return int64_t(d);
}

}  // namespace

TrainerState TrainerState::from_json(const nlohmann::json& j) {
  BR_CHECK(j.is_object(), "TrainerState::from_json: expected an object");
  TrainerState s;
  // Each field has its JSON type: an integer (json_int64), a number, or a boolean; anything else
  // names the key.
  auto num = [&](const char* key, auto& out) {
    using T = std::decay_t<decltype(out)>;
    if (!j.contains(key) || j[key].is_null()) return;
    const nlohmann::json& v = j[key];
    if constexpr (std::is_same_v<T, bool>) {
      BR_CHECK(v.is_boolean(), "TrainerState::from_json: '{}' must be true or false, got {}", key, v.dump());
      out = v.get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
      const std::optional<int64_t> i = json_int64(v);
      BR_CHECK(i, "TrainerState::from_json: '{}' must be an integer, got {}", key, v.dump());
      out = *i;
    } else {
      BR_CHECK(v.is_number(), "TrainerState::from_json: '{}' must be a number, got {}", key, v.dump());
      out = v.get<double>();
    }
  };
  try {
    num("epoch", s.epoch);
    num("global_step", s.global_step);
    num("max_steps", s.max_steps);
    num("num_train_epochs", s.num_train_epochs);
    num("total_flos", s.total_flos);
    num("logging_steps", s.logging_steps);
    num("eval_steps", s.eval_steps);
    num("save_steps", s.save_steps);
    num("train_batch_size", s.train_batch_size);
    num("is_local_process_zero", s.is_local_process_zero);
    num("is_world_process_zero", s.is_world_process_zero);
    BR_CHECK(s.global_step >= 0, "TrainerState::from_json: 'global_step' must be >= 0, got {}", s.global_step);
    BR_CHECK(!j.contains("log_history") || j["log_history"].is_array(),
             "TrainerState::from_json: 'log_history' must be a list, got {}", j["log_history"].dump());
    if (j.contains("best_metric") && !j["best_metric"].is_null()) s.best_metric = j["best_metric"].get<double>();
    if (j.contains("best_model_checkpoint") && !j["best_model_checkpoint"].is_null())
      s.best_model_checkpoint = j["best_model_checkpoint"].get<std::string>();
    if (j.contains("log_history"))
      for (const auto& e : j["log_history"]) {
        BR_CHECK(e.is_object(), "TrainerState::from_json: a 'log_history' entry must be an object, got {}", e.dump());
        s.log_history.push_back(nlohmann::ordered_json::parse(e.dump()));
      }
  } catch (const nlohmann::json::exception& e) {
    fail("TrainerState::from_json: {}", e.what());
  }
  return s;
}

std::string TrainerState::to_file_text() const { return python_json_dumps(to_json(), 2) + "\n"; }

TrainerState TrainerState::parse(std::string_view text, const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for 1e999
    fail("{}: invalid JSON: {}", origin, e.what());
  }
  try {
    return from_json(j);
  } catch (const Error& e) {
    fail("{}: {}", origin, e.what());
  }
}

TrainerState TrainerState::load(const fs::path& path) { return parse(read_file(path), path.string()); }

bool TrainerState::update_best(const TrainingArgs& args, const nlohmann::ordered_json& metrics,
                               const std::string& checkpoint_dir) {
  if (!args.metric_for_best_model) return false;
  const std::string key = args.best_metric_key();
  if (!metrics.contains(key) || !metrics[key].is_number()) {
    std::vector<std::string> keys;
    for (auto it = metrics.begin(); it != metrics.end(); ++it) keys.push_back(it.key());
    fail("update_best: --metric_for_best_model needs '{}' in the evaluation metrics, which hold: {}", key,
         fmt::join(keys, ", "));
  }
  const double value = metrics[key].get<double>();
  const std::string& m = *args.metric_for_best_model;
  const bool greater = args.greater_is_better.value_or(!(m == "loss" || m == "eval_loss"));
  const bool better = !best_metric || !best_model_checkpoint ||
                      (greater ? value > *best_metric : value < *best_metric);
  if (!better) return false;
  best_metric = value;
  best_model_checkpoint = checkpoint_dir;
  return true;
}

void save_metrics(const std::string& output_dir, const std::string& split,
                  const nlohmann::ordered_json& metrics, bool combined) {
  BR_CHECK(metrics.is_object(), "save_metrics: {} metrics must be an object", split);
  std::error_code ec;
  fs::create_directories(output_dir, ec);
  nlohmann::json sorted = nlohmann::json::parse(metrics.dump());
  write_file_atomic(join_path(output_dir, split + "_results.json"), python_json_dumps(sorted, 4));
  if (!combined) return;
  const std::string all_path = join_path(output_dir, "all_results.json");
  nlohmann::json all = nlohmann::json::object();
  if (fs::exists(all_path, ec)) {
    try {
      all = nlohmann::json::parse(read_file(all_path));
    } catch (const nlohmann::json::parse_error& e) {
      fail("{}: invalid JSON: {}", all_path, e.what());
    }
    BR_CHECK(all.is_object(), "{}: expected a JSON object", all_path);
  }
  for (auto& [k, v] : sorted.items()) all[k] = v;
  write_file_atomic(all_path, python_json_dumps(all, 4));
}

std::string format_predictions(const std::vector<int64_t>& label_ids, const std::vector<std::string>& label_names) {
  std::string out = "index\tprediction\n";
  for (size_t i = 0; i < label_ids.size(); ++i) {
    int64_t id = label_ids[i];
    BR_CHECK(id >= 0 && id < int64_t(label_names.size()),
             "format_predictions: row {} predicts label id {}, but there are {} labels", i, id, label_names.size());
    out += fmt::format("{}\t{}\n", i, label_names[size_t(id)]);
  }
  return out;
}

std::string format_predictions(const std::vector<double>& values) {
  std::string out = "index\tprediction\n";
  char buf[512];
  for (size_t i = 0; i < values.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%3.3f", values[i]);
    out += fmt::format("{}\t{}\n", i, buf);
  }
  return out;
}

std::string training_args_text(const TrainingArgs& args) {
  return python_json_dumps(args.to_json(), 2) + "\n";
}

void write_training_args(const fs::path& path, const TrainingArgs& args) {
  write_file_atomic(path, training_args_text(args));
}

namespace {

constexpr const char* kTokenizerFiles[] = {"vocab.txt", "tokenizer_config.json",
                                           "special_tokens_map.json", "tokenizer.json"};

}  // namespace

void save_model_folder(const BertForSequenceClassification& model, const fs::path& dir,
                       const TrainingArgs& args, const fs::path& tokenizer_dir) {
  save_pretrained(model, dir.string());
  if (!tokenizer_dir.empty())
    for (const char* f : kTokenizerFiles)
      if (fs::exists(tokenizer_dir / f))
        fs::copy_file(tokenizer_dir / f, dir / f, fs::copy_options::overwrite_existing);
  write_training_args(dir / "training_args.json", args);
}

std::string rng_state_text(const TrainingArgs& args, ResumePoint next, int64_t global_step) {
  nlohmann::json rng = {{"seed", args.seed}, {"sampler_seed", args.sampler_seed()}, {"epoch", next.epoch},
                        {"micro_batches_in_epoch", next.micro_batches_in_epoch}, {"global_step", global_step}};
  return rng.dump(2) + "\n";
}

ResumePoint parse_rng_state(std::string_view text, const std::string& origin) {
  nlohmann::json rng;
  try {
    rng = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for 1e999
    fail("{}: invalid JSON: {}", origin, e.what());
  }
  BR_CHECK(rng.is_object(), "{}: expected a JSON object, got {}", origin, rng.type_name());
  auto count = [&](const char* key) {
    BR_CHECK(rng.contains(key), "{}: '{}' is missing", origin, key);
    const std::optional<int64_t> i = json_int64(rng[key]);
    BR_CHECK(i && *i >= 0, "{}: '{}' must be a non-negative integer, got {}", origin, key, rng[key].dump());
    return *i;
  };
  return {count("epoch"), count("micro_batches_in_epoch")};
}

std::string save_checkpoint(const BertForSequenceClassification& model, const Optimizer& opt,
                            const TrainerState& state, const TrainingArgs& args, ResumePoint next,
                            const fs::path& tokenizer_dir) {
  CheckpointWriter w(args.output_dir, state.global_step);
  // save_model_folder's files, each through the writer or adopted by it.
  save_pretrained(model, w.dir().string());
  w.adopt("model.safetensors");
  w.adopt("config.json");
  if (!tokenizer_dir.empty())
    for (const char* f : kTokenizerFiles)
      if (fs::exists(tokenizer_dir / f)) w.write_file(f, read_file(tokenizer_dir / f));
  w.write_file("training_args.json", training_args_text(args));
  opt.save((w.dir() / "optimizer.safetensors").string());
  w.adopt("optimizer.safetensors");
  nlohmann::json sched = {{"last_epoch", state.global_step},
                          {"lr_scheduler_type", std::string(scheduler_name(args.lr_scheduler_type))}};
  w.write_file("scheduler.json", sched.dump(2) + "\n");
  w.write_file("rng_state.json", rng_state_text(args, next, state.global_step));
  w.write_file("trainer_state.json", state.to_file_text());
  return w.commit();
}

ResumePoint load_checkpoint(const fs::path& dir, BertForSequenceClassification& model,
                            Optimizer& opt, TrainerState& state, uint64_t seed) {
  load_safetensors_weights(model, (dir / "model.safetensors").string(), seed);
  opt.load((dir / "optimizer.safetensors").string());
  state = TrainerState::load(dir / "trainer_state.json");
  const fs::path rng_path = dir / "rng_state.json";
  const ResumePoint r = parse_rng_state(read_file(rng_path.string()), rng_path.string());
  BR_CHECK(opt.num_steps() == state.global_step, "{}: optimizer step {} != global_step {}",
           dir.string(), opt.num_steps(), state.global_step);
  return r;
}

}  // namespace br
