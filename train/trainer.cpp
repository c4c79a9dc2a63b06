#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <thread>

#include <fmt/format.h>
#include <omp.h>

#include "kernels/adamw.h"
#include "kernels/cast.h"
#include "kernels/grad_norm.h"
#include "models/bert_io.h"
#include "models/model_path.h"
#include "models/safetensors.h"
#include "train/batch.h"
#include "train/checkpoint_io.h"
#include "train/communicator.h"
#include "train/eval_shard.h"
#include "train/glue.h"
#include "train/grad_reducer.h"
#include "train/metrics.h"
#include "train/progress.h"
#include "train/pyformat.h"
#include "train/sampler.h"
#include "train/schedule.h"
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

struct Dataset {
  std::string name;  // "train", "validation", "validation_mismatched", "test", ...
  std::vector<Example> examples;
  std::vector<Encoding> encodings;
};

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

// A batch of examples `idx` of `ds` on `device` (train/batch.h).
BertBatch collate(const Dataset& ds, const std::vector<int64_t>& idx, Device device,
                  bool regression, int32_t pad_id) {
  return collate(ds.examples, ds.encodings, idx, device, regression, pad_id);
}

// ---------------------------------------------------------------------------------------------
// Optimizer: AdamW over every parameter; no weight decay on biases and LayerNorm weights (HF).

struct Optimizer {
  std::vector<std::string> names;
  std::vector<Tensor> params, grads, m, v;
  std::vector<bool> decay;
  AdamWConfig cfg;
  int64_t step = 0;

  Optimizer(BertForSequenceClassification& model, const TrainingArgs& a) {
    auto p = model.params().named();
    auto g = model.grads().named();
    for (size_t i = 0; i < p.size(); ++i) {
      names.push_back(p[i].first);
      params.push_back(p[i].second);
      grads.push_back(g[i].second);
      m.push_back(Tensor::zeros(p[i].second.shape(), DType::f32, model.device(), MemCategory::optimizer_state));
      v.push_back(Tensor::zeros(p[i].second.shape(), DType::f32, model.device(), MemCategory::optimizer_state));
      const std::string& n = p[i].first;
      decay.push_back(n.find("bias") == std::string::npos && n.find("LayerNorm") == std::string::npos);
    }
    cfg.beta1 = float(a.adam_beta1);
    cfg.beta2 = float(a.adam_beta2);
    cfg.eps = float(a.adam_epsilon);
    cfg.weight_decay = float(a.weight_decay);
    cfg.hf_variant = a.optim == OptimizerType::adamw_hf;
  }

  void apply(double lr) {
    cfg.lr = float(lr);
    ++step;
    adamw_step(params, grads, m, v, decay, cfg, step);
  }

  // optimizer.safetensors: exp_avg.<name>, exp_avg_sq.<name>; the step count in the metadata.
  void save(const std::string& path) const {
    std::vector<std::pair<std::string, Tensor>> t;
    for (size_t i = 0; i < names.size(); ++i) {
      t.emplace_back("exp_avg." + names[i], m[i]);
      t.emplace_back("exp_avg_sq." + names[i], v[i]);
    }
    write_safetensors(path, t, {{"format", "pt"}, {"step", std::to_string(step)}});
  }

  void load(const std::string& path) {
    SafetensorsFile f = SafetensorsFile::open(path);
    auto it = f.metadata().find("step");
    BR_CHECK(it != f.metadata().end(), "{}: no 'step' in the metadata", path);
    step = std::stoll(it->second);
    for (size_t i = 0; i < names.size(); ++i) {
      m[i].copy_from(f.load_as("exp_avg." + names[i], m[i].shape(), DType::f32, Device::cpu, MemCategory::workspace));
      v[i].copy_from(f.load_as("exp_avg_sq." + names[i], v[i].shape(), DType::f32, Device::cpu, MemCategory::workspace));
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Evaluation

struct Predictions {
  double loss = 0;  // mean per-example loss (NaN without labels)
  std::vector<double> preds, labels;  // argmax ids (classification) or values (regression)
};

// Per-example loss from its logits, in double: cross-entropy, or squared error for regression.
double example_loss(const double* logits, int64_t C, const Example& e, bool regression) {
  if (regression) return (logits[0] - double(e.value)) * (logits[0] - double(e.value));
  double m = logits[0];
  for (int64_t c = 1; c < C; ++c) m = std::max(m, logits[c]);
  double z = 0;
  for (int64_t c = 0; c < C; ++c) z += std::exp(logits[c] - m);
  return m + std::log(z) - logits[e.label];
}

// Forward over the dataset, sharded across ranks as HF's ShardSampler does; every rank gets the
// logits of all examples in dataset order, so metrics equal the single-process ones.
Predictions predict(BertForSequenceClassification& model, const Dataset& ds, const TrainingArgs& a,
                    bool regression, int32_t pad_id, Communicator& comm) {
  const int64_t n = int64_t(ds.examples.size()), bs = a.per_device_eval_batch_size;
  const int64_t C = model.config().num_labels();
  std::vector<int64_t> mine = shard_eval_indices(n, bs, comm.world_size(), comm.rank());
  std::vector<double> local;
  StepOptions opt;  // eval: no dropout, nothing saved
  for (size_t start = 0; start < mine.size(); start += size_t(bs)) {
    std::vector<int64_t> idx(mine.begin() + int64_t(start),
                             mine.begin() + int64_t(std::min(mine.size(), start + size_t(bs))));
    BertBatch b = collate(ds, idx, model.device(), regression, pad_id);
    Tensor logits = model.forward(b, opt, nullptr).logits;
    std::vector<float> l = cast(logits.to(Device::cpu), DType::f32).to_vector<float>();
    local.insert(local.end(), l.begin(), l.end());
  }
  std::vector<double> all = comm.world_size() == 1 ? local : gather_eval_outputs(comm, local, n, bs, C);
  Predictions p;
  double loss_sum = 0;
  bool labeled = true;
  for (int64_t i = 0; i < n; ++i) {
    const double* l = all.data() + i * C;
    const Example& e = ds.examples[size_t(i)];
    if (regression) {
      p.preds.push_back(double(float(l[0])));
    } else {
      int64_t best = 0;
      for (int64_t c = 1; c < C; ++c)
        if (l[c] > l[best]) best = c;
      p.preds.push_back(double(best));
    }
    p.labels.push_back(regression ? double(e.value) : double(e.label));
    labeled = labeled && e.labeled();
    if (labeled) loss_sum += example_loss(l, C, e, regression);
  }
  p.loss = labeled && n ? loss_sum / double(n) : NAN;
  return p;
}

ordered_json evaluate(BertForSequenceClassification& model, const Dataset& ds, const Data& data,
                      const TrainingArgs& a, int32_t pad_id, const std::string& suffix,
                      Communicator& comm) {
  double t0 = now_seconds();
  Predictions p = predict(model, ds, a, data.is_regression(), pad_id, comm);
  double runtime = now_seconds() - t0;
  ordered_json m;
  m["eval_loss" + suffix] = p.loss;
  std::vector<std::pair<std::string, double>> metrics;
  if (!data.task.empty()) {
    metrics = glue_metrics_ordered(data.task, p.preds, p.labels);
  } else {
    for (auto& kv : file_metrics(data.is_regression(), p.preds, p.labels)) metrics.push_back(kv);
  }
  for (auto& [k, v] : metrics) m["eval_" + k + suffix] = v;
  const int64_t per_step = a.per_device_eval_batch_size * comm.world_size();
  int64_t steps = (int64_t(ds.examples.size()) + per_step - 1) / per_step;
  ordered_json speed = speed_metrics("eval", runtime, double(ds.examples.size()), steps);
  for (auto& [k, v] : speed.items()) m[k + suffix] = v;
  return m;
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

void copy_tokenizer_files(const fs::path& model_dir, const fs::path& dir) {
  for (const char* f : {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"})
    if (fs::exists(model_dir / f)) fs::copy_file(model_dir / f, dir / f, fs::copy_options::overwrite_existing);
}

void save_model_dir(const BertForSequenceClassification& model, const fs::path& model_dir,
                    const fs::path& dir, const TrainingArgs& a) {
  save_pretrained(model, dir.string());
  copy_tokenizer_files(model_dir, dir);
  write_training_args(dir / "training_args.json", a);
}

std::string save_checkpoint(const BertForSequenceClassification& model, const Optimizer& opt,
                            TrainerState& state, const TrainingArgs& a, const fs::path& model_dir,
                            const std::optional<ordered_json>& metrics, int64_t epoch,
                            int64_t micro_in_epoch) {
  CheckpointWriter w(a.output_dir, state.global_step);
  save_model_dir(model, model_dir, w.dir(), a);
  opt.save((w.dir() / "optimizer.safetensors").string());
  nlohmann::json sched = {{"last_epoch", state.global_step}, {"lr_scheduler_type", a.to_json()["lr_scheduler_type"]}};
  w.write_file("scheduler.json", sched.dump(2) + "\n");
  // Our RNG is counter based: dropout masks depend on (seed, step, site, example) only, and the
  // data order on (seed, epoch); this is all the state a resume needs.
  nlohmann::json rng = {{"seed", a.seed}, {"sampler_seed", a.sampler_seed()}, {"epoch", epoch},
                        {"micro_batches_in_epoch", micro_in_epoch}, {"global_step", state.global_step}};
  w.write_file("rng_state.json", rng.dump(2) + "\n");
  std::string final_dir = checkpoint_path(a.output_dir, state.global_step);
  if (metrics) state.update_best(a, *metrics, final_dir);
  w.write_file("trainer_state.json", state.to_file_text());
  std::string path = w.commit();
  rotate_checkpoints(a.output_dir, a.save_total_limit, state.best_model_checkpoint);
  return path;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

void run_glue(const TrainingArgs& a) {
  Device device = a.device ? *a.device : (cuda_available() ? Device::cuda : Device::cpu);
  // Before any CUDA allocation: the communicator picks this rank's device.
  std::unique_ptr<Communicator> comm_owner = make_communicator(device);
  Communicator& comm = *comm_owner;
  const int W = comm.world_size();
  const bool main_rank = comm.is_main();
  BR_CHECK(!(a.fp16 || a.bf16) || device == Device::cuda,
           "--fp16/--bf16 need --device cuda (the CPU backend trains in fp32)");
  BR_CHECK(!a.fp16, "--fp16: fp16 mixed precision (loss scaling) is not implemented; use --bf16 "
                   "(bf16 compute with fp32 master weights) or fp32");
  if (main_rank)
    for (const std::string& note : a.ignored_notes) fmt::print("note: {}\n", note);
  // CPU ranks on one machine share its cores. Unless OMP_NUM_THREADS says otherwise (`bertrazor
  // launch` sets 1, as torchrun does) or the launcher bound each rank to its own cores (mpirun's
  // default), each rank takes its share, so the ranks' GEMM threads do not outnumber the cores
  // (Eigen's threads spin while they wait for each other).
  const char* omp_env = std::getenv("OMP_NUM_THREADS");
  const int cores = int(std::thread::hardware_concurrency());
  if (device == Device::cpu && comm.local_world_size() > 1 && !(omp_env && *omp_env) &&
      omp_get_num_procs() >= cores) {
    const int share = std::max(1, cores / comm.local_world_size());
    omp_set_num_threads(share);
    if (main_rank)
      fmt::print("note: {} unbound ranks share this machine's {} cores: {} thread(s) each (set "
                 "OMP_NUM_THREADS to choose)\n", comm.local_world_size(), cores, share);
  }
  std::optional<std::string> resume = a.do_train ? resume_checkpoint(a) : std::nullopt;
  comm.barrier();  // every rank has checked the output dir before rank 0 writes to it
  if (main_rank) {
    fs::create_directories(a.output_dir);
    remove_stale_checkpoint_tmp(a.output_dir);
  }

  const fs::path model_dir = resolve_model_path(a.model_name_or_path);
  const fs::path vocab = a.tokenizer_name ? fs::path(resolve_model_path(*a.tokenizer_name)) / "vocab.txt"
                                          : model_dir / "vocab.txt";
  WordPieceTokenizer tok = WordPieceTokenizer::from_vocab_file(vocab.string());
  BertConfig probe = BertConfig::from_json_file(
      ((a.config_name ? fs::path(resolve_model_path(*a.config_name)) : model_dir) / "config.json").string());
  BR_CHECK(a.max_seq_length <= probe.max_position_embeddings,
           "--max_seq_length {} exceeds the model's max_position_embeddings {} ({})", a.max_seq_length,
           probe.max_position_embeddings, (model_dir / "config.json").string());
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

  std::vector<std::string> labels = data.label_names.empty() ? std::vector<std::string>{"LABEL_0"}
                                                             : data.label_names;
  LoadReport load_report;
  BertForSequenceClassification model =
      from_pretrained(model_dir.string(), device, labels, uint64_t(a.seed), &load_report);
  if (!load_report.initialized.empty())
    fmt::print("Some weights were not in {} and are newly initialized: [{}]\n", model_dir.string(),
               fmt::join(load_report.initialized, ", "));
  if (!data.task.empty()) {
    BertConfig& c = const_cast<BertConfig&>(model.config());
    c.finetuning_task = data.task;
  }
  model.policy() = backrazor_policy(a);
  if (W > 1) {
    nlohmann::json flags = a.to_json();
    for (const char* per_rank : {"local_rank", "device"}) flags.erase(per_rank);
    comm.check_consistent("model config and training flags",
                          model.config().to_json().dump() + "|world_size=" + std::to_string(W) +
                              "|" + flags.dump());
    for (const Tensor& p : model.params().all()) comm.broadcast(p, 0);
  }
  if (a.bf16) model.set_compute_dtype(DType::bf16);  // bf16 compute, fp32 master weights
  const bool regression = data.is_regression();
  const int32_t pad_id = tok.pad_id();

  if (a.do_train) {
    const int64_t N = int64_t(data.train.examples.size());
    StepPlan plan = plan_steps(a, N, W);
    Optimizer opt(model, a);
    int64_t non_embedding_params = 0;
    for (auto& [name, t] : model.params().named())
      if (name.find("_embeddings.") == std::string::npos) non_embedding_params += t.numel();  // HF excludes nn.Embedding only
    TrainerState state;
    state.max_steps = plan.max_steps;
    state.num_train_epochs = plan.num_epochs;
    state.logging_steps = a.logging_steps;
    state.eval_steps = a.eval_steps.value_or(0);
    state.save_steps = a.save_steps;
    state.train_batch_size = a.per_device_train_batch_size;
    int64_t start_epoch = 0, skip_micro = 0;
    if (resume) {
      fs::path ck = *resume;
      fmt::print("Loading model from {} (resume).\n", ck.string());
      load_safetensors_weights(model, (ck / "model.safetensors").string(), uint64_t(a.seed));
      opt.load((ck / "optimizer.safetensors").string());
      state = TrainerState::load(ck / "trainer_state.json");
      nlohmann::json rng = nlohmann::json::parse(read_file(ck / "rng_state.json"));
      start_epoch = rng.at("epoch").get<int64_t>();
      skip_micro = rng.at("micro_batches_in_epoch").get<int64_t>();
      BR_CHECK(opt.step == state.global_step, "{}: optimizer step {} != global_step {}", ck.string(),
               opt.step, state.global_step);
    }
    if (main_rank)
      fmt::print("***** Running training *****\n  Num examples = {}\n  Num Epochs = {}\n"
                 "  Instantaneous batch size per device = {}\n"
                 "  Total train batch size (w. parallel, distributed & accumulation) = {}\n"
                 "  Gradient Accumulation steps = {}\n  Total optimization steps = {}\n"
                 "  Device = {}\n  Processes = {} ({})\n  Back Razor = {}\n",
                 N, plan.num_epochs, a.per_device_train_batch_size, plan.total_train_batch_size,
                 a.gradient_accumulation_steps, plan.max_steps, device_name(device), W,
                 comm.backend(), backrazor_label(a));
    std::fflush(stdout);

    // Only rank 0 prints: the others write their bar to /dev/null.
    std::FILE* sink = main_rank ? stdout : std::fopen("/dev/null", "w");
    Progress progress(plan.max_steps, "train", sink, !main_rank || a.disable_tqdm ? std::optional<bool>(false) : std::nullopt);
    progress.update(state.global_step);
    double t_start = now_seconds();
    double tr_loss_since_log = 0, tr_loss_total = 0;
    int64_t steps_since_log = 0;
    int64_t peak_saved = 0;
    bool memory_reported = false;
    std::optional<ordered_json> last_eval;
    Tape tape(device);
    model.grads().zero_();
    std::optional<GradientReducer> reducer;
    if (W > 1) {
      const size_t cap = a.ddp_bucket_cap_mb ? size_t(*a.ddp_bucket_cap_mb) << 20
                                             : Communicator::kDefaultBucketBytes;
      reducer.emplace(comm, model.grads_flat(), model.grad_group_offsets(), cap);
      progress.write(fmt::format("gradient all-reduce: {} bucket(s) of about {} MiB, each started "
                                 "as soon as backward finishes it",
                                 reducer->buckets().size(), cap >> 20));
    }
    bool stop = state.global_step >= plan.max_steps;
    std::string last_good = state.best_model_checkpoint.value_or(resume.value_or(""));

    auto do_eval = [&]() {
      ordered_json all;
      for (size_t i = 0; i < data.eval.size(); ++i) {
        std::string suffix = i == 0 ? "" : "_mm";
        ordered_json m = evaluate(model, data.eval[i], data, a, pad_id, suffix, comm);
        for (auto& [k, v] : m.items()) all[k] = v;
      }
      ordered_json shown = record_log(state, all);
      progress.write(format_log_line(shown));
      return all;
    };

    for (int64_t epoch = start_epoch; epoch < plan.num_epochs && !stop; ++epoch) {
      // DistributedSampler order for every world size (world 1 included), so a global batch holds
      // the same examples however it is split across ranks.
      std::vector<int64_t> order =
          distributed_sampler_order(N, uint64_t(a.sampler_seed()), epoch, W, comm.rank());
      const int64_t B = a.per_device_train_batch_size;
      const int64_t batches = plan.batches_per_epoch;
      for (int64_t mb = 0; mb < batches && !stop; ++mb) {
        if (epoch == start_epoch && mb < skip_micro) continue;
        std::vector<int64_t> idx(order.begin() + mb * B,
                                 order.begin() + std::min<int64_t>(int64_t(order.size()), (mb + 1) * B));
        BertBatch batch = collate(data.train, idx, device, regression, pad_id);
        StepOptions so{true, uint64_t(a.seed), uint32_t(state.global_step), a.attention_dropout};
        tape.clear();
        ForwardResult fwd = model.forward(batch, so, &tape);
        Tensor logits = fwd.logits;
        peak_saved = std::max(peak_saved, tape.bytes());
        double loss = cast(model.loss(logits, batch.labels).to(Device::cpu), DType::f64).to_vector<double>()[0];
        if (W > 1) loss = comm.all_reduce_sum(loss) / W;  // the logged loss is the mean over ranks
        if (!std::isfinite(loss))
          fail("training stopped: the loss is {} at step {} (epoch {}, micro-batch {}); the last good "
               "checkpoint is {}", loss, state.global_step + 1, epoch, mb,
               last_good.empty() ? std::string("none (nothing saved yet)") : last_good);
        const float scale = 1.0f / float(a.gradient_accumulation_steps);
        const bool optimizer_step = is_optimizer_step(mb, batches, a.gradient_accumulation_steps);
        // As DDP (outside no_sync): on the micro-batch that ends an optimizer step, each bucket of
        // finished gradients starts its all-reduce while backward goes on.
        GradReadyHook on_ready;
        if (reducer && optimizer_step) on_ready = [&](int g) { reducer->group_ready(g); };
        model.backward(batch, so, tape, fwd.record, model.loss_backward(logits, batch.labels, scale), on_ready);
        tr_loss_since_log += loss * scale;
        state.total_flos += 6.0 * double(batch.input_ids.numel()) * double(non_embedding_params);
        tr_loss_total += loss * scale;
        if (!optimizer_step) continue;

        if (reducer) reducer->finish();  // as DDP: clip the averaged gradient
        double grad_norm = a.max_grad_norm > 0 ? clip_grad_norm(opt.grads, a.max_grad_norm)
                                               : global_grad_norm(opt.grads);
        opt.apply(learning_rate_at(a, state.global_step, plan.max_steps));
        model.grads().zero_();
        state.global_step += 1;
        state.epoch = fractional_epoch(epoch, mb, batches);
        ++steps_since_log;
        progress.update(state.global_step);
        if (!memory_reported) {
          MemoryStats ms = memory_stats(device);
          progress.write(fmt::format(
              "memory: saved activations {} bytes per step ({}), peak {} bytes on {} "
              "(parameters {}, gradients {}, optimizer state {})",
              peak_saved, a.backRazor ? "Back Razor " + backrazor_label(a) : std::string("dense"),
              ms.total_peak, device_name(device), ms.max(MemCategory::parameters),
              ms.max(MemCategory::gradients), ms.max(MemCategory::optimizer_state)));
          memory_reported = true;
        }

        StepActions act = actions_after_step(a, state.global_step, plan.max_steps);
        if (mb == batches - 1) {
          StepActions e = actions_at_epoch_end(a);
          act.log |= e.log;
          act.evaluate |= e.evaluate;
          act.save |= e.save;
        }
        if (act.log) {
          ordered_json logs;
          logs["loss"] = python_round(tr_loss_since_log / double(steps_since_log), 4);
          logs["grad_norm"] = grad_norm;
          logs["learning_rate"] = learning_rate_at(a, state.global_step, plan.max_steps);
          progress.write(format_log_line(record_log(state, logs)));
          tr_loss_since_log = 0;
          steps_since_log = 0;
        }
        std::optional<ordered_json> metrics;
        if (act.evaluate && !data.eval.empty()) metrics = last_eval = do_eval();
        if (act.save) {
          int64_t next_epoch = mb == batches - 1 ? epoch + 1 : epoch;
          int64_t next_mb = mb == batches - 1 ? 0 : mb + 1;
          if (main_rank) {
            last_good = save_checkpoint(model, opt, state, a, model_dir, metrics, next_epoch, next_mb);
            progress.write(fmt::format("Saving model checkpoint to {}", last_good));
          } else {
            if (metrics) state.update_best(a, *metrics, checkpoint_path(a.output_dir, state.global_step));
            last_good = checkpoint_path(a.output_dir, state.global_step);
          }
          comm.barrier();
        }
        stop = act.stop || state.global_step >= plan.max_steps;
      }
    }
    progress.close();
    if (!main_rank) std::fclose(sink);
    double runtime = now_seconds() - t_start;

    if (a.load_best_model_at_end && state.best_model_checkpoint) {
      fmt::print("Loading best model from {} (score: {}).\n", *state.best_model_checkpoint,
                 state.best_metric.value_or(NAN));
      load_safetensors_weights(model, (fs::path(*state.best_model_checkpoint) / "model.safetensors").string(),
                               uint64_t(a.seed));
    }
    ordered_json train_metrics = speed_metrics("train", runtime, plan.num_train_samples, plan.max_steps);
    ordered_json final_log;
    for (auto& [k, v] : train_metrics.items()) final_log[k] = v;
    final_log["total_flos"] = state.total_flos;
    final_log["train_loss"] = state.global_step ? tr_loss_total / double(state.global_step) : 0.0;
    ordered_json shown = record_log(state, final_log);
    if (main_rank) {
      fmt::print("{}\n", format_log_line(shown));
      save_model_dir(model, model_dir, a.output_dir, a);
      write_file_atomic(fs::path(a.output_dir) / "trainer_state.json", state.to_file_text());
    }
    ordered_json out;
    out["epoch"] = python_round(state.epoch, 2);
    out["train_loss"] = final_log["train_loss"];
    for (auto& [k, v] : train_metrics.items()) out[k] = v;
    out["train_samples"] = N;
    out["train_saved_activation_bytes"] = peak_saved;
    out["train_peak_memory_bytes"] = memory_stats(device).total_peak;
    if (main_rank) {
      fmt::print("{}", format_metrics_block("train", out));
      save_metrics(a.output_dir, "train", out);
    }
    comm.barrier();
  }

  if (a.do_eval) {
    ordered_json all;
    for (size_t i = 0; i < data.eval.size(); ++i) {
      ordered_json m = evaluate(model, data.eval[i], data, a, pad_id, i == 0 ? "" : "_mm", comm);
      m[std::string("eval_samples") + (i == 0 ? "" : "_mm")] = int64_t(data.eval[i].examples.size());
      for (auto& [k, v] : m.items()) all[k] = v;
    }
    if (main_rank) {
      fmt::print("{}", format_metrics_block("eval", all));
      save_metrics(a.output_dir, "eval", all);
    }
  }

  if (a.do_predict) {
    for (const Dataset& d : data.test) {
      Predictions p = predict(model, d, a, regression, pad_id, comm);
      if (!main_rank) continue;
      std::string name = data.task.empty() ? "None" : data.task;
      if (d.name.find("mismatched") != std::string::npos) name += "-mm";
      std::string text;
      if (regression) {
        text = format_predictions(p.preds);
      } else {
        std::vector<int64_t> ids(p.preds.begin(), p.preds.end());
        text = format_predictions(ids, data.label_names);
      }
      write_file_atomic(fs::path(a.output_dir) / ("predict_results_" + name + ".txt"), text);
      fmt::print("Wrote {} predictions to {}\n", p.preds.size(),
                 (fs::path(a.output_dir) / ("predict_results_" + name + ".txt")).string());
    }
  }
}

}  // namespace br
