// The output directory in HF's layout (spec §2.5, §2.8): checkpoint-N folders written atomically,
// listing and rotation under save_total_limit that never deletes the best checkpoint, last-
// checkpoint detection for auto-resume, trainer_state.json, *_results.json and predictions; and
// the checkpoint of a run itself (save_checkpoint / load_checkpoint).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/bert.h"
#include "train/args.h"
#include "train/optimizer.h"

namespace br {

namespace fs = std::filesystem;

// Writes `bytes` to `path` through `path.tmp-<pid>-<n>`: write, fsync, rename, fsync the folder.
// A reader sees the old file or the new one, never a partial one.
void write_file_atomic(const fs::path& path, std::string_view bytes);

// "checkpoint-N", and os.path.join(output_dir, "checkpoint-N") as HF spells it.
std::string checkpoint_name(int64_t step);
std::string checkpoint_path(const std::string& output_dir, int64_t step);
// N for a folder named exactly checkpoint-N (HF's ^checkpoint\-(\d+)$); nullopt otherwise, e.g.
// for the "checkpoint-N.tmp-..." folders an interrupted save leaves behind.
std::optional<int64_t> checkpoint_step(const fs::path& path);

// The checkpoint-N folders of output_dir sorted by N (HF >= 4.12 order; 4.11 sorted by mtime),
// then, when best_model_checkpoint names one of them, the best moved to the second-to-last place
// (HF _sorted_checkpoints). Paths are output_dir/checkpoint-N.
std::vector<std::string> sorted_checkpoints(const std::string& output_dir,
                                            const std::optional<std::string>& best_model_checkpoint = {});

// HF _rotate_checkpoints: with save_total_limit L > 0, delete the oldest folders of
// sorted_checkpoints beyond L; when L == 1 and a best exists that is not the newest, keep 2.
// Returns the deleted folders, in deletion order.
std::vector<std::string> rotate_checkpoints(const std::string& output_dir,
                                            std::optional<int64_t> save_total_limit,
                                            const std::optional<std::string>& best_model_checkpoint);

// The checkpoint-N with the largest N in output_dir (HF get_last_checkpoint), or nullopt.
std::optional<std::string> last_checkpoint(const std::string& output_dir);

// Removes "checkpoint-N.tmp-*" folders left by an interrupted save; returns how many.
int64_t remove_stale_checkpoint_tmp(const std::string& output_dir);

// Verified checkpoints: every checkpoint-N holds manifest.json, written last before the folder is
// renamed into place, with the byte size and XXH3-128 digest (libxxhash) of every other file.
// intact: the manifest matches; legacy: no manifest (a checkpoint from before manifests);
// damaged: `problem` names the first file that is missing, has another size or another digest,
// or the manifest itself when it cannot be read.
struct CheckpointCheck {
  enum Kind { intact, legacy, damaged } kind = intact;
  std::string problem;
};
CheckpointCheck verify_checkpoint(const fs::path& dir);
// One file of a manifest: its plain name in the checkpoint folder, byte size and digest.
struct ManifestEntry {
  std::string file;
  int64_t bytes = 0;
  std::string xxh3_128;  // 32 lower-case hex digits
};
// Reads manifest.json's text (what verify_checkpoint checks the folder against). Throws naming
// `origin` and the entry for invalid JSON, an unknown hash, a name that is not a plain file name
// (no '/', not "." or ".."), a size that is not a non-negative integer or a digest that is not
// 32 hex digits.
std::vector<ManifestEntry> parse_manifest(std::string_view text, const std::string& origin);
// The XXH3-128 digest of a file's bytes as 32 hex digits; throws naming the file.
std::string file_digest(const fs::path& path);

// run_glue's start-up check: with do_train and without overwrite_output_dir, a non-empty
// output_dir must hold a checkpoint (stale tmp folders do not count); the checkpoint to resume
// from is resume_from_checkpoint if given, else the newest intact checkpoint; the value True
// (unless a folder has that name) asks for the newest intact checkpoint of output_dir, which
// must hold one, whatever overwrite_output_dir says. Throws the HF message. Every checkpoint is verified (verify_checkpoint): a damaged one that
// resume_from_checkpoint names is an error; a damaged newest one is passed over for the next
// intact one, with a line in *notes naming the file; a legacy one loads with a warning in *notes.
std::optional<std::string> resume_checkpoint(const TrainingArgs& args,
                                             std::vector<std::string>* notes = nullptr);

// A checkpoint being written: files go into `dir()` (output_dir/checkpoint-N.tmp-<tag>);
// commit() renames it to checkpoint-N, replacing an older folder of that name. Destroyed without
// commit(), it removes the tmp folder; a crash leaves it, and listing ignores it. A failed write
// (ENOSPC, EIO, a read-only folder) throws naming the file; the caller's unwinding then removes
// the tmp folder, and no checkpoint-N folder, old or new, is touched before commit() succeeds.
// Multi-process saves pass the same `tag` on every rank so all write into one folder.
class CheckpointWriter {
 public:
  CheckpointWriter(const std::string& output_dir, int64_t step, std::string tag = "");
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;
  ~CheckpointWriter();

  const fs::path& dir() const { return tmp_; }
  void write_file(const std::string& name, std::string_view bytes) const;
  // Counts a file another writer put into dir() (write_safetensors, config.json) against the
  // injected byte limit below; a no-op without one.
  void adopt(const std::string& name) const;
  std::string commit();  // returns checkpoint_path(output_dir, step)

 private:
  std::string output_dir_;
  int64_t step_;
  fs::path tmp_;
  bool committed_ = false;
};

// Test seam for failing saves: once `bytes` more bytes have gone into checkpoint folders
// (CheckpointWriter's files, adopted ones and the manifest), every further checkpoint write fails
// as on a full disk: the file is cut at the limit and the write throws "<file>: write failed
// after K of N bytes: No space left on device (injected)". nullopt (the default) turns it off.
void fail_checkpoint_writes_after(std::optional<int64_t> bytes);

// HF TrainerState as trainer_state.json holds it (4.11 fields plus the later logging/eval/save
// steps and train_batch_size). log_history entries keep their keys; the file sorts them.
struct TrainerState {
  double epoch = 0;
  int64_t global_step = 0;
  int64_t max_steps = 0;
  int64_t num_train_epochs = 0;
  double total_flos = 0;
  std::vector<nlohmann::ordered_json> log_history;
  std::optional<double> best_metric;
  std::optional<std::string> best_model_checkpoint;
  int64_t logging_steps = 0;
  int64_t eval_steps = 0;
  int64_t save_steps = 0;
  int64_t train_batch_size = 0;
  bool is_local_process_zero = true;
  bool is_world_process_zero = true;

  nlohmann::json to_json() const;
  static TrainerState from_json(const nlohmann::json& j);
  // The same from trainer_state.json's text; `origin` names it in errors (load's parser, the fuzz
  // target's entry).
  static TrainerState parse(std::string_view text, const std::string& origin);
  // json.dumps(indent=2, sort_keys=True) + "\n", as TrainerState.save_to_json writes it.
  std::string to_file_text() const;
  static TrainerState load(const fs::path& path);

  // HF _save_checkpoint's best tracking, run before trainer_state.json is written: the value is
  // metrics[args.best_metric_key()]; the checkpoint becomes best when there is none yet or the value
  // is strictly better. Returns true when it became best. No-op without metric_for_best_model.
  bool update_best(const TrainingArgs& args, const nlohmann::ordered_json& metrics,
                   const std::string& checkpoint_dir);
};

// Trainer.save_metrics: writes output_dir/<split>_results.json (indent 4, sorted keys) and, with
// `combined`, merges the metrics into all_results.json (later keys overwrite equal ones).
void save_metrics(const std::string& output_dir, const std::string& split,
                  const nlohmann::ordered_json& metrics, bool combined = true);

// run_glue's predict_results_<task>.txt: "index\tprediction", then per row "i\t<label name>"
// for classification (label ids index label_names) or "i\t%3.3f" for regression (pass the
// float32 predictions widened to double, as numpy formats them).
std::string format_predictions(const std::vector<int64_t>& label_ids,
                               const std::vector<std::string>& label_names);
std::string format_predictions(const std::vector<double>& values);

// training_args.json: args.to_json() with indent 2, sorted keys.
std::string training_args_text(const TrainingArgs& args);
void write_training_args(const fs::path& path, const TrainingArgs& args);

// A model folder as run_glue leaves one: save_pretrained's config.json and model.safetensors, the
// tokenizer files found in tokenizer_dir (vocab.txt, tokenizer_config.json,
// special_tokens_map.json, tokenizer.json; none when it is empty) and training_args.json.
void save_model_folder(const BertForSequenceClassification& model, const fs::path& dir,
                       const TrainingArgs& args, const fs::path& tokenizer_dir = {});

// Where the training data resumes after a checkpoint: the epoch, and how many of its
// micro-batches were already consumed. Dropout masks and the data order are counter-based
// (seed, step, example; seed, epoch), so this is all the RNG state a resume needs.
struct ResumePoint {
  int64_t epoch = 0;
  int64_t micro_batches_in_epoch = 0;
};

// rng_state.json: the seeds (args.seed, args.sampler_seed()), global_step and `next`, as
// save_checkpoint writes it. parse_rng_state reads `next` back as a resume does: both counts must be
// non-negative integers; anything else is a br::Error naming origin.
std::string rng_state_text(const TrainingArgs& args, ResumePoint next, int64_t global_step);
ResumePoint parse_rng_state(std::string_view text, const std::string& origin);

// Writes output_dir/checkpoint-<state.global_step> atomically (CheckpointWriter): the model folder
// (the files of save_model_folder), optimizer.safetensors, scheduler.json, rng_state.json (seeds
// and `next`) and trainer_state.json. Returns the folder. Best tracking
// (TrainerState::update_best) comes before, rotation (rotate_checkpoints) after, as in HF's
// _save_checkpoint. A failure throws naming the file and leaves no tmp folder behind.
std::string save_checkpoint(const BertForSequenceClassification& model, const Optimizer& opt,
                            const TrainerState& state, const TrainingArgs& args, ResumePoint next,
                            const fs::path& tokenizer_dir = {});

// Restores a checkpoint written by save_checkpoint into model, opt and state (a head missing
// from the weights is initialised from seed, as load_safetensors_weights does) and returns where
// the data resumes. Throws when the optimizer's step count is not state.global_step.
ResumePoint load_checkpoint(const fs::path& dir, BertForSequenceClassification& model,
                            Optimizer& opt, TrainerState& state, uint64_t seed);

}  // namespace br
