#include "kernels/gemm.h"
#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <numeric>
#include <thread>

#include <fmt/format.h>
#include <omp.h>

#include "kernels/grad_norm.h"
#include "models/bert_io.h"
#include "models/model_path.h"
#include "train/batch.h"
#include "train/checkpoint_io.h"
#include "train/communicator.h"
#include "train/glue.h"
#include "train/grad_reducer.h"
#include "train/memory_report.h"
#include "train/optimizer.h"
#include "train/preempt.h"
#include "train/progress.h"
#include "train/tensorboard.h"
#include "train/pyformat.h"
#include "train/sampler.h"
#include "train/schedule.h"
#include "train/step.h"
#include "train/wordpiece.h"

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

namespace br {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}


// ---------------------------------------------------------------------------------------------
// Data

struct Data {
  std::string task;  // GLUE task name, or "" for --train_file data
  std::vector<std::string> label_names;  // empty: regression
  Dataset train;
  std::vector<Dataset> eval, test;
  bool is_regression() const { return label_names.empty(); }
};

std::vector<Example> take_first(std::vector<Example> v, const std::optional<int64_t>& n) {
  if (n && *n >= 0 && size_t(*n) < v.size()) v.resize(size_t(*n));
  return v;
}

Data load_data(const TrainingArgs& a) {
  Data d;
  if (a.task_name) {
    const GlueTask& t = glue_task(*a.task_name);
    d.task = t.name;
    d.label_names = t.label_names;
    auto split = [&](Split s, const std::optional<std::string>& file, const char* what) {
      std::vector<std::vector<Example>> out;
      if (file) {
        out.push_back(load_task_file(t, *file));
      } else {
        BR_CHECK(a.data_dir, "--task_name {} needs --data_dir (a folder with the GLUE TSV files) or --{}",
                 t.name, what);
        out = load_glue_split(t, *a.data_dir, s);
      }
      return out;
    };
    auto names = [&](Split s) {
      std::vector<std::string> r;
      for (const GlueFile& f : glue_files(t, s)) r.push_back(f.split_name);
      return r;
    };
    if (a.do_train) d.train = {"train", take_first(split(Split::train, a.train_file, "train_file")[0], a.max_train_samples), {}};
    if (a.do_eval) {
      auto lists = split(Split::validation, a.validation_file, "validation_file");
      auto n = names(Split::validation);
      for (size_t i = 0; i < lists.size(); ++i)
        d.eval.push_back({i < n.size() ? n[i] : "validation", take_first(lists[i], a.max_eval_samples), {}});
    }
    if (a.do_predict) {
      auto lists = split(Split::test, a.test_file, "test_file");
      auto n = names(Split::test);
      for (size_t i = 0; i < lists.size(); ++i)
        d.test.push_back({i < n.size() ? n[i] : "test", take_first(lists[i], a.max_predict_samples), {}});
    }
    return d;
  }
  BR_CHECK(a.train_file || a.validation_file,
           "need --task_name with --data_dir, or --train_file/--validation_file");
  DataTable train_table = read_data_file(a.train_file ? *a.train_file : *a.validation_file);
  TextColumns cols = choose_text_columns(train_table);
  LabelScheme labels = infer_label_scheme(train_table);
  d.label_names = labels.names;
  if (a.do_train) {
    BR_CHECK(a.train_file, "--do_train needs --train_file (or --task_name with --data_dir)");
    d.train = {"train", take_first(load_examples(train_table, cols, labels), a.max_train_samples), {}};
  }
  if (a.do_eval) {
    BR_CHECK(a.validation_file, "--do_eval needs --validation_file (or --task_name with --data_dir)");
    d.eval.push_back({"validation",
                      take_first(load_examples(read_data_file(*a.validation_file), cols, labels),
                                 a.max_eval_samples),
                      {}});
  }
  if (a.do_predict) {
    BR_CHECK(a.test_file, "--do_predict needs --test_file (or --task_name with --data_dir)");
    d.test.push_back({"test",
                      take_first(load_examples(read_data_file(*a.test_file), cols, labels),
                                 a.max_predict_samples),
                      {}});
  }
  return d;
}

void tokenize(Dataset& ds, const WordPieceTokenizer& tok, const TrainingArgs& a) {
  ds.encodings.clear();
  ds.encodings.reserve(ds.examples.size());
  for (const Example& e : ds.examples)
    ds.encodings.push_back(tok.encode(e.text_a, e.text_b ? &*e.text_b : nullptr,
                                      int(a.max_seq_length), a.pad_to_max_length));
}

// ---------------------------------------------------------------------------------------------
// Set-up

// CPU ranks on one machine share its cores. Unless OMP_NUM_THREADS says otherwise (`bertrazor
// launch` sets 1, as torchrun does) or the launcher bound each rank to its own cores (mpirun's
// default), each rank takes its share, so the ranks' GEMM threads do not outnumber the cores
// (Eigen's threads spin while they wait for each other).
void share_cpu_threads(const Communicator& comm, Device device) {
  const char* omp_env = std::getenv("OMP_NUM_THREADS");
  const int cores = int(std::thread::hardware_concurrency());
  if (device == Device::cpu && comm.local_world_size() > 1 && !(omp_env && *omp_env) &&
      omp_get_num_procs() >= cores) {
    const int share = std::max(1, cores / comm.local_world_size());
    omp_set_num_threads(share);
    if (comm.is_main())
      fmt::print("note: {} unbound ranks share this machine's {} cores: {} thread(s) each (set "
                 "OMP_NUM_THREADS to choose)\n", comm.local_world_size(), cores, share);
  }
}

// What a run works with once its inputs are read.
struct Run {
  const TrainingArgs& a;
  Communicator& comm;
  Device device;
  fs::path model_dir;
  Data data;
  EvalOptions eval;  // the task, regression or not, the eval batch and [PAD]: how sets are scored
  std::shared_ptr<EventWriter> tensorboard;  // rank 0 with --report_to tensorboard, else null
};

// Every log entry goes to trainer_state.json's history and, when on, to TensorBoard (at the step
// the entry records, the time it is written); returns what to print, as record_log.
ordered_json log_entry(TrainerState& state, const Run& run, const ordered_json& logs) {
  ordered_json shown = record_log(state, logs);  // with the epoch, as HF's log() adds it
  if (run.tensorboard)
    run.tensorboard->add_logs(shown, state.global_step);
  return shown;
}

// The tokenizer's encodings of the data the run needs, after checking --max_seq_length against
// the model's config; eval gets the task, the label kind and the tokenizer's [PAD].
Data load_inputs(const TrainingArgs& a, const fs::path& model_dir, EvalOptions& eval) {
  const fs::path vocab = a.tokenizer_name ? fs::path(resolve_model_path(*a.tokenizer_name)) / "vocab.txt"
                                          : model_dir / "vocab.txt";
  WordPieceTokenizer tok = WordPieceTokenizer::from_vocab_file(vocab.string());
  const std::string config = config_json_path(a);
  BertConfig probe = BertConfig::from_json_file(config);
  BR_CHECK(a.max_seq_length <= probe.max_position_embeddings,
           "--max_seq_length {} exceeds the model's max_position_embeddings {} ({})", a.max_seq_length,
           probe.max_position_embeddings, config);
  BR_CHECK(a.max_seq_length >= 2, "--max_seq_length {} is too small", a.max_seq_length);

  Data data = load_data(a);
  if (a.do_train) {
    BR_CHECK(!data.train.examples.empty(), "the training set is empty");
    tokenize(data.train, tok, a);
  }
  for (Dataset& d : data.eval) {
    BR_CHECK(!d.examples.empty(), "the evaluation set '{}' is empty", d.name);
    tokenize(d, tok, a);
  }
  for (Dataset& d : data.test) tokenize(d, tok, a);
  eval = {data.task, data.is_regression(), a.per_device_eval_batch_size, tok.pad_id()};
  return data;
}

// The model of model_dir with the data's labels and task (from_pretrained's steps with the task
// set on the config), the same on every rank, configured for training.
BertForSequenceClassification load_model(const Run& run) {
  const TrainingArgs& a = run.a;
  BertConfig c = BertConfig::from_json_file((run.model_dir / "config.json").string());
  c.set_labels(run.data.label_names.empty() ? std::vector<std::string>{"LABEL_0"} : run.data.label_names);
  if (!run.data.task.empty()) c.finetuning_task = run.data.task;
  BertForSequenceClassification model(c, run.device, DType::f32);
  const fs::path weights = run.model_dir / "model.safetensors";
  BR_CHECK(fs::exists(weights), "{}: no model.safetensors in the model folder", run.model_dir.string());
  LoadReport report = load_safetensors_weights(model, weights.string(), uint64_t(a.seed));
  if (!report.initialized.empty())
    fmt::print("Some weights were not in {} and are newly initialized: [{}]\n", run.model_dir.string(),
               fmt::join(report.initialized, ", "));
  if (run.comm.world_size() > 1) {
    nlohmann::json flags = a.to_json();
    for (const char* per_rank : {"local_rank", "device"}) flags.erase(per_rank);
    run.comm.check_consistent("model config and training flags",
                              model.config().to_json().dump() + "|world_size=" +
                                  std::to_string(run.comm.world_size()) + "|" + flags.dump());
    for (const Tensor& p : model.params().all()) run.comm.broadcast(p, 0);
  }
  configure_for_training(model, a);
  return model;
}

// The metrics of every evaluation set, merged; the second (MNLI mismatched) gets "_mm" after its
// keys, as run_glue names them.
ordered_json evaluate_all(BertForSequenceClassification& model, const Run& run) {
  ordered_json all;
  for (size_t i = 0; i < run.data.eval.size(); ++i) {
    ordered_json m = evaluate(model, run.data.eval[i], run.eval, run.comm, i == 0 ? "" : "_mm");
    for (auto& [k, v] : m.items()) all[k] = v;
  }
  return all;
}

// ---------------------------------------------------------------------------------------------
// Training

// HF Trainer.train over the run's training set: micro-batches through train_step, the gradient
// all-reduce, clipping, AdamW on the schedule, then logging, evaluation and checkpoints at the
// cadence the arguments ask for; resumable from a checkpoint.
class Training {
 public:
  Training(BertForSequenceClassification& model, const Run& run, std::optional<std::string> resume);
  // The loop, then the final model, trainer_state.json and train_results.json; or, when a stop
  // signal arrived, the loop up to the end of that step and a checkpoint (stop_signal() != 0).
  int64_t run();  // the global step it ends at
  int stop_signal() const { return stop_signal_; }
  const std::string& last_checkpoint() const { return last_good_; }

 private:
  void print_header() const;
  void micro_batch(int64_t epoch, int64_t mb, const std::vector<int64_t>& order);
  void optimizer_step(int64_t epoch, int64_t mb);
  void after_step(int64_t epoch, int64_t mb);  // DefaultFlowCallback: log, evaluate, save
  // Rank 0 writes checkpoint-<global_step>; every rank learns whether it worked. A failure throws
  // (--save_on_error stop, or a stop signal) or is a warning; returns whether it was saved.
  bool save(ResumePoint next, int stopping_signal);
  // The stop signal any rank has received (the first in rank order), the same on every rank.
  int agreed_stop_signal();
  void finish();

  BertForSequenceClassification& model_;
  const Run& run_;
  const TrainingArgs& a_;
  Communicator& comm_;
  const std::optional<std::string> resume_;
  const int64_t num_examples_;
  const StepPlan plan_;
  Optimizer opt_;
  int64_t non_embedding_params_ = 0;
  TrainerState state_;
  ResumePoint start_;
  std::FILE* sink_ = nullptr;  // rank 0: stdout; the others write their bar to /dev/null
  std::unique_ptr<Progress> progress_;
  std::optional<GradientReducer> reducer_;
  Tape tape_;
  double t_start_ = 0, t_last_log_ = 0, tr_loss_since_log_ = 0, tr_loss_total_ = 0, grad_norm_ = 0;
  int64_t steps_since_log_ = 0, peak_saved_ = 0;
  bool memory_reported_ = false, stop_ = false;
  int stop_signal_ = 0;
  std::string last_good_;  // the newest checkpoint, named when training fails
  std::optional<MemoryPlan> memory_plan_;  // --max_memory: the plan configure_for_training applied
};

Training::Training(BertForSequenceClassification& model, const Run& run, std::optional<std::string> resume)
    : model_(model),
      run_(run),
      a_(run.a),
      comm_(run.comm),
      resume_(std::move(resume)),
      num_examples_(int64_t(run.data.train.examples.size())),
      plan_(plan_steps(run.a, num_examples_, run.comm.world_size())),
      opt_(model, adamw_config(run.a)),
      tape_(run.device) {
  for (auto& [name, t] : model_.params().named())
    if (name.find("_embeddings.") == std::string::npos) non_embedding_params_ += t.numel();  // HF excludes nn.Embedding only
  state_.max_steps = plan_.max_steps;
  state_.num_train_epochs = plan_.num_epochs;
  state_.logging_steps = a_.logging_steps;
  state_.eval_steps = a_.eval_steps.value_or(0);
  state_.save_steps = a_.save_steps;
  state_.train_batch_size = a_.per_device_train_batch_size;
  if (a_.max_memory) memory_plan_ = plan_for_args(a_, model_.config(), true);
  if (resume_) {
    fmt::print("Loading model from {} (resume).\n", *resume_);
    start_ = load_checkpoint(*resume_, model_, opt_, state_, uint64_t(a_.seed));
  }
}

void Training::print_header() const {
  if (comm_.is_main())
    fmt::print("***** Running training *****\n  Num examples = {}\n  Num Epochs = {}\n"
               "  Instantaneous batch size per device = {}\n"
               "  Total train batch size (w. parallel, distributed & accumulation) = {}\n"
               "  Gradient Accumulation steps = {}\n  Total optimization steps = {}\n"
               "  Device = {}\n  Processes = {} ({})\n  Back Razor = {}\n",
               num_examples_, plan_.num_epochs, a_.per_device_train_batch_size,
               plan_.total_train_batch_size, a_.gradient_accumulation_steps, plan_.max_steps,
               device_name(run_.device), comm_.world_size(), comm_.backend(), backrazor_label(a_));
  if (comm_.is_main() && a_.max_memory)
    fmt::print("  {}", format_memory_plan(*memory_plan_));
  else if (comm_.is_main() && (a_.gradient_checkpointing || !a_.backrazor_layers.empty())) {
    std::vector<LayerPlan> plans = model_.layer_plans();
    if (plans.empty())
      for (int l = 0; l < model_.config().num_hidden_layers; ++l) plans.push_back(model_.plan_for(l));
    fmt::print("  Encoder layers:\n");
    const std::string text = describe_layer_plans(plans);
    for (size_t from = 0, at; (at = text.find('\n', from)) != std::string::npos; from = at + 1)
      fmt::print("    {}\n", text.substr(from, at - from));
  }
  std::fflush(stdout);
}

int64_t Training::run() {
  print_header();
  const bool main_rank = comm_.is_main();
  sink_ = main_rank ? stdout : std::fopen("/dev/null", "w");
  progress_ = std::make_unique<Progress>(
      plan_.max_steps, "train", sink_,
      !main_rank || a_.disable_tqdm ? std::optional<bool>(false) : std::nullopt);
  progress_->update(state_.global_step);
  t_start_ = t_last_log_ = now_seconds();
  model_.zero_grad();
  if (comm_.world_size() > 1) {
    const size_t cap = a_.ddp_bucket_cap_mb ? size_t(*a_.ddp_bucket_cap_mb) << 20
                                            : Communicator::kDefaultBucketBytes;
    reducer_.emplace(comm_, model_.grads_flat(), model_.grad_group_offsets(), cap);
    progress_->write(fmt::format("gradient all-reduce: {} bucket(s) of about {} MiB, each started "
                                 "as soon as backward finishes it",
                                 reducer_->buckets().size(), cap >> 20));
  }
  stop_ = state_.global_step >= plan_.max_steps;
  last_good_ = resume_.value_or(state_.best_model_checkpoint.value_or(""));
  {
    StopSignals signals;  // during the loop a stop signal ends it cleanly (after_step polls it)
    for (int64_t epoch = start_.epoch; epoch < plan_.num_epochs && !stop_; ++epoch) {
      // DistributedSampler order for every world size (world 1 included), so a global batch
      // holds the same examples however it is split across ranks.
      const std::vector<int64_t> order = distributed_sampler_order(
          num_examples_, uint64_t(a_.sampler_seed()), epoch, comm_.world_size(), comm_.rank());
      for (int64_t mb = 0; mb < plan_.batches_per_epoch && !stop_; ++mb)
        if (epoch != start_.epoch || mb >= start_.micro_batches_in_epoch) micro_batch(epoch, mb, order);
    }
  }
  if (stop_signal_) {
    progress_->close();
    if (!main_rank) std::fclose(sink_);
    return state_.global_step;
  }
  finish();
  return state_.global_step;
}

void Training::micro_batch(int64_t epoch, int64_t mb, const std::vector<int64_t>& order) {
  const int64_t B = a_.per_device_train_batch_size;
  std::vector<int64_t> idx(order.begin() + mb * B,
                           order.begin() + std::min<int64_t>(int64_t(order.size()), (mb + 1) * B));
  std::vector<int64_t> lengths;
  for (int64_t i : idx) lengths.push_back(int64_t(run_.data.train.encodings[size_t(i)].input_ids.size()));
  const int64_t padded = int64_t(idx.size()) * *std::max_element(lengths.begin(), lengths.end());
  // --split_batch_by_length: groups of similar lengths, each padded to its own longest, each
  // group's loss weighted by its share of the batch, so that their gradients sum to the batch's;
  // sparse sites keep the counts of the whole batch's length, which keeps the same values. Not
  // when they rank padding too, which would then change.
  std::vector<std::vector<size_t>> groups;
  if (a_.split_batch_by_length && !model_.ranks_padding()) {
    groups = split_by_length(lengths, length_cost(model_.config()));
  } else {
    groups.emplace_back(idx.size());
    std::iota(groups[0].begin(), groups[0].end(), size_t(0));
  }
  const float scale = 1.0f / float(a_.gradient_accumulation_steps);
  const bool ends_step = is_optimizer_step(mb, plan_.batches_per_epoch, a_.gradient_accumulation_steps);
  StepOptions options = train_step_options(a_, state_.global_step);
  if (groups.size() > 1) options.rank_length = padded / int64_t(idx.size());
  double loss = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<int64_t> members;
    for (size_t at : groups[g]) members.push_back(idx[at]);
    BertBatch batch = collate(run_.data.train, members, run_.device, run_.eval.regression, run_.eval.pad_id);
    const double share = double(members.size()) / double(idx.size());
    // As DDP (outside no_sync): on the micro-batch that ends an optimizer step, each bucket of
    // finished gradients starts its all-reduce while the last group's backward goes on.
    GradReadyHook on_ready;
    if (reducer_ && ends_step && g + 1 == groups.size())
      on_ready = [this](int group) { reducer_->group_ready(group); };
    StepResult r = train_step(model_, batch, options, tape_, float(double(scale) * share), on_ready);
    peak_saved_ = std::max(peak_saved_, r.saved_bytes);
    loss += r.loss * share;
  }
  if (comm_.world_size() > 1) loss = comm_.all_reduce_sum(loss) / comm_.world_size();  // the mean over ranks
  if (!std::isfinite(loss))
    fail("training stopped: the loss is {} at step {} (epoch {}, micro-batch {}); the last good "
         "checkpoint is {}", loss, state_.global_step + 1, epoch, mb,
         last_good_.empty() ? std::string("none (nothing saved yet)") : last_good_);
  tr_loss_since_log_ += loss * scale;
  // HF counts the batch as padded to its longest, however it ran.
  state_.total_flos += 6.0 * double(padded) * double(non_embedding_params_);
  tr_loss_total_ += loss * scale;
  if (ends_step) optimizer_step(epoch, mb);
}

void Training::optimizer_step(int64_t epoch, int64_t mb) {
  if (reducer_) {
    reducer_->finish();  // as DDP: clip the averaged gradient
    model_.note_grads_written();  // other ranks' word-embedding rows are in it now
  }
  grad_norm_ = a_.max_grad_norm > 0 ? clip_grad_norm(opt_.grads(), a_.max_grad_norm)
                                    : global_grad_norm(opt_.grads());
  opt_.step(learning_rate_at(a_, state_.global_step, plan_.max_steps));
  model_.zero_grad();
  state_.global_step += 1;
  state_.epoch = fractional_epoch(epoch, mb, plan_.batches_per_epoch);
  ++steps_since_log_;
  progress_->update(state_.global_step);
  if (!memory_reported_) {
    MemoryStats ms = memory_stats(run_.device);
    progress_->write(fmt::format(
        "memory: saved activations {} bytes per step ({}), peak {} bytes on {} "
        "(parameters {}, gradients {}, optimizer state {})",
        peak_saved_, a_.backRazor ? "Back Razor " + backrazor_label(a_) : std::string("dense"),
        ms.total_peak, device_name(run_.device), ms.max(MemCategory::parameters),
        ms.max(MemCategory::gradients), ms.max(MemCategory::optimizer_state)));
    memory_reported_ = true;
  }
  after_step(epoch, mb);
}

void Training::after_step(int64_t epoch, int64_t mb) {
  const bool epoch_end = mb == plan_.batches_per_epoch - 1;
  StepActions act = actions_after_step(a_, state_.global_step, plan_.max_steps);
  if (epoch_end) {
    StepActions e = actions_at_epoch_end(a_);
    act.log |= e.log;
    act.evaluate |= e.evaluate;
    act.save |= e.save;
  }
  if (act.log) {
    ordered_json logs;
    logs["loss"] = python_round(tr_loss_since_log_ / double(steps_since_log_), 4);
    logs["grad_norm"] = grad_norm_;
    logs["learning_rate"] = learning_rate_at(a_, state_.global_step, plan_.max_steps);
    progress_->write(format_log_line(log_entry(state_, run_, logs)));
    if (run_.tensorboard) {  // ours beside HF's tags (not in trainer_state.json): memory, time
      ordered_json ours;
      ours["memory/saved_activation_bytes"] = peak_saved_;
      ours["memory/peak_bytes"] = memory_stats(run_.device).total_peak;
      ours["time/step_seconds"] = (now_seconds() - t_last_log_) / double(steps_since_log_);
      run_.tensorboard->add_logs(ours, state_.global_step);
    }
    t_last_log_ = now_seconds();
    tr_loss_since_log_ = 0;
    steps_since_log_ = 0;
  }
  std::optional<ordered_json> metrics;
  if (act.evaluate && !run_.data.eval.empty()) {
    metrics = evaluate_all(model_, run_);
    progress_->write(format_log_line(log_entry(state_, run_, *metrics)));
  }
  const ResumePoint next{epoch_end ? epoch + 1 : epoch, epoch_end ? 0 : mb + 1};
  bool saved = false;
  if (act.save) {
    const std::optional<double> best_metric = state_.best_metric;
    const std::optional<std::string> best = state_.best_model_checkpoint;
    if (metrics) state_.update_best(a_, *metrics, checkpoint_path(a_.output_dir, state_.global_step));
    saved = save(next, 0);
    if (!saved) {  // a checkpoint that was not written cannot be the best
      state_.best_metric = best_metric;
      state_.best_model_checkpoint = best;
    }
  }
  stop_ = act.stop || state_.global_step >= plan_.max_steps;
  if (const int sig = agreed_stop_signal()) {
    if (!saved) save(next, sig);
    stop_signal_ = sig;
    stop_ = true;
    progress_->write(fmt::format("bertrazor: {} received: training stopped after step {} of {}; "
                                 "checkpoint saved to {} (continue with --resume_from_checkpoint True)",
                                 stop_signal_name(sig), state_.global_step, plan_.max_steps, last_good_));
  }
}

bool Training::save(ResumePoint next, int stopping_signal) {
  const std::string path = checkpoint_path(a_.output_dir, state_.global_step);
  std::string error;
  if (comm_.is_main()) {
    try {
      last_good_ = save_checkpoint(model_, opt_, state_, a_, next, run_.model_dir);
      progress_->write(fmt::format("Saving model checkpoint to {}", last_good_));
      rotate_checkpoints(a_.output_dir, a_.save_total_limit, state_.best_model_checkpoint);
    } catch (const Error& e) {
      error = e.what();
    }
  }
  // Also the barrier that keeps the other ranks from running ahead of rank 0's save.
  bool ok = error.empty();
  if (comm_.world_size() > 1) ok = comm_.all_reduce_sum(ok ? 0.0 : 1.0) == 0.0;
  if (ok) {
    last_good_ = path;
    return true;
  }
  const std::string what = comm_.is_main() ? fmt::format("saving {} failed: {}", path, error)
                                           : fmt::format("rank 0 failed to save {} (its log has why)", path);
  const std::string newest = last_good_.empty() ? std::string("none (nothing saved yet)") : last_good_;
  if (stopping_signal)
    fail("{}; training was stopping ({} received); the newest checkpoint is {}", what,
         stop_signal_name(stopping_signal), newest);
  if (a_.save_on_error == "stop")
    fail("{}; training stopped (--save_on_error stop); the newest checkpoint is {}", what, newest);
  progress_->write(fmt::format("warning: {}; training goes on (--save_on_error continue); the newest "
                               "checkpoint is {}", what, newest));
  return false;
}

int Training::agreed_stop_signal() {
  const int mine = StopSignals::pending();
  if (comm_.world_size() == 1) return mine;
  for (double s : comm_.all_gather(std::vector<double>{double(mine)}))
    if (s != 0) return int(s);
  return 0;
}

void Training::finish() {
  const bool main_rank = comm_.is_main();
  progress_->close();
  if (!main_rank) std::fclose(sink_);
  const double runtime = now_seconds() - t_start_;
  if (a_.load_best_model_at_end && state_.best_model_checkpoint) {
    fmt::print("Loading best model from {} (score: {}).\n", *state_.best_model_checkpoint,
               state_.best_metric.value_or(NAN));
    load_safetensors_weights(model_, (fs::path(*state_.best_model_checkpoint) / "model.safetensors").string(),
                             uint64_t(a_.seed));
  }
  ordered_json train_metrics = speed_metrics("train", runtime, plan_.num_train_samples, plan_.max_steps);
  ordered_json final_log;
  for (auto& [k, v] : train_metrics.items()) final_log[k] = v;
  final_log["total_flos"] = state_.total_flos;
  final_log["train_loss"] = state_.global_step ? tr_loss_total_ / double(state_.global_step) : 0.0;
  ordered_json shown = log_entry(state_, run_, final_log);
  if (main_rank) {
    fmt::print("{}\n", format_log_line(shown));
    save_model_folder(model_, a_.output_dir, a_, run_.model_dir);
    if (memory_plan_) {  // trainer_state.json with the plan beside HF's keys
      nlohmann::json j = state_.to_json();
      j["memory_plan"] = memory_plan_json(*memory_plan_);
      write_file_atomic(fs::path(a_.output_dir) / "trainer_state.json", python_json_dumps(j, 2) + "\n");
    } else {
      write_file_atomic(fs::path(a_.output_dir) / "trainer_state.json", state_.to_file_text());
    }
  }
  ordered_json out;
  out["epoch"] = python_round(state_.epoch, 2);
  out["train_loss"] = final_log["train_loss"];
  for (auto& [k, v] : train_metrics.items()) out[k] = v;
  out["train_samples"] = num_examples_;
  out["train_saved_activation_bytes"] = peak_saved_;
  out["train_peak_memory_bytes"] = memory_stats(run_.device).total_peak;
  if (memory_plan_) out["memory_plan"] = memory_plan_json(*memory_plan_);
  if (main_rank) {
    fmt::print("{}", format_metrics_block("train", out));
    save_metrics(a_.output_dir, "train", out);
  }
  comm_.barrier();
}

// ---------------------------------------------------------------------------------------------
// Evaluation and prediction after training

void final_evaluation(BertForSequenceClassification& model, const Run& run, int64_t global_step) {
  ordered_json all = evaluate_all(model, run);
  if (run.tensorboard) run.tensorboard->add_logs(all, global_step);
  for (size_t i = 0; i < run.data.eval.size(); ++i)
    all[std::string("eval_samples") + (i == 0 ? "" : "_mm")] = int64_t(run.data.eval[i].examples.size());
  if (run.comm.is_main()) {
    fmt::print("{}", format_metrics_block("eval", all));
    save_metrics(run.a.output_dir, "eval", all);
  }
}

// predict_results_<task>[-mm].txt for every test set ("None" without a task, as run_glue names it).
void write_predictions(BertForSequenceClassification& model, const Run& run) {
  for (const Dataset& d : run.data.test) {
    Predictions p = predict(model, d, run.eval, run.comm);
    if (!run.comm.is_main()) continue;
    std::string name = run.data.task.empty() ? "None" : run.data.task;
    if (d.name.find("mismatched") != std::string::npos) name += "-mm";
    std::string text;
    if (run.eval.regression) {
      text = format_predictions(p.preds);
    } else {
      std::vector<int64_t> ids(p.preds.begin(), p.preds.end());
      text = format_predictions(ids, run.data.label_names);
    }
    const fs::path file = fs::path(run.a.output_dir) / ("predict_results_" + name + ".txt");
    write_file_atomic(file, text);
    fmt::print("Wrote {} predictions to {}\n", p.preds.size(), file.string());
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

RunResult run_glue(const TrainingArgs& asked) {
  // --auto_find_batch_size: the batch sizes that fit --max_memory, before anything runs.
  std::string fit_note;
  const TrainingArgs a = asked.auto_find_batch_size ? fit_batch_sizes(asked, &fit_note) : asked;
  const Device device = resolved_device(a);
  // Before any CUDA allocation: the communicator picks this rank's device.
  std::unique_ptr<Communicator> comm = make_communicator(device);
  // --bf16 on the CPU sets a process-wide product mode (configure_for_training); a library caller's
  // own setting comes back when the run ends.
  struct RestoreBf16 {
    bool saved = cpu_bf16_matmul();
    ~RestoreBf16() { set_cpu_bf16_matmul(saved); }
  } restore_bf16;
  BR_CHECK(!a.fp16, "--fp16: fp16 mixed precision (loss scaling) is not implemented; use --bf16 "
                   "(bf16 compute with fp32 master weights) or fp32");
  if (comm->is_main() && a.bf16 && device == Device::cpu && !cpu_bf16_matmul_native())
    fmt::print("warning: --bf16: this CPU has no bf16 matmul kernel (AVX512-BF16 or AMX); the "
               "products are rounded to bf16 as asked but run as f32 GEMMs, slower than fp32 "
               "(1.2x the fp32 step on an AVX2 Zen 3, docs/RESULTS.md)\n");
  if (comm->is_main())
    for (const std::string& note : a.ignored_notes) fmt::print("note: {}\n", note);
  if (comm->is_main() && !fit_note.empty()) fmt::print("{}\n", fit_note);
  share_cpu_threads(*comm, device);
  check_memory_budget(a);  // --max_memory: a budget no plan fits fails before any file is written
  std::vector<std::string> resume_notes;
  std::optional<std::string> resume = a.do_train ? resume_checkpoint(a, &resume_notes) : std::nullopt;
  if (comm->is_main())
    for (const std::string& line : resume_notes) fmt::print("{}\n", line);
  comm->barrier();  // every rank has checked the output dir before rank 0 writes to it
  if (comm->is_main()) {
    fs::create_directories(a.output_dir);
    remove_stale_checkpoint_tmp(a.output_dir);
  }

  Run run{a, *comm, device, resolve_model_path(a.model_name_or_path), {}, {}, nullptr};
  if (comm->is_main() && reports_to_tensorboard(a) && (a.do_train || a.do_eval))
    run.tensorboard = std::make_shared<EventWriter>(
        a.logging_dir.value_or(default_logging_dir(a.output_dir)), host_name());
  run.data = load_inputs(a, run.model_dir, run.eval);
  BertForSequenceClassification model = load_model(run);
  RunResult result;
  int64_t global_step = 0;
  if (a.do_train) {
    Training training(model, run, resume);
    global_step = training.run();
    result.stop_signal = training.stop_signal();
    if (result.stop_signal) {
      result.checkpoint = training.last_checkpoint();
      return result;  // evaluation and prediction belong to the resumed run
    }
  }
  if (a.do_eval) final_evaluation(model, run, global_step);
  if (a.do_predict) write_predictions(model, run);
  return result;
}

}  // namespace br
