// A trainer of your own, linking the installed bertrazor package: a small random BERT learns, with
// Back Razor on, whether a sequence contains token 5. It is built from the trainer's parts —
// train_step (forward, loss, backward of a micro-batch), Optimizer (AdamW with HF's no-decay
// groups), save_checkpoint / load_checkpoint — and prints the loss and the saved-activation bytes.
#include <cstdio>
#include <filesystem>
#include <random>
#include <vector>

#include "core/allocator.h"
#include "models/tape.h"
#include "kernels/grad_norm.h"
#include "models/bert.h"
#include "train/checkpoint_io.h"
#include "train/optimizer.h"
#include "train/step.h"

namespace fs = std::filesystem;

int main() {
  using namespace br;
  retain_freed_host_memory();  // reuse freed activation buffers instead of page-faulting new ones
  BertConfig cfg;
  cfg.vocab_size = 32;
  cfg.hidden_size = 32;
  cfg.num_hidden_layers = 2;
  cfg.num_attention_heads = 4;
  cfg.intermediate_size = 64;
  cfg.max_position_embeddings = 16;
  BertForSequenceClassification model(cfg, Device::cpu);
  model.init_weights(1);
  model.policy() = BackRazorPolicy::preset("all", 0.8, DType::f16);

  AdamWConfig adamw;
  adamw.lr = 0;  // given per step
  adamw.weight_decay = 0.01f;
  Optimizer opt(model, adamw);

  const int B = 16, S = 12, kSteps = 150;
  const double lr = 3e-3;
  std::mt19937 rng(0);
  float first = 0, last = 0;
  int64_t saved = 0;
  Tape tape(Device::cpu);
  for (int step = 1; step <= kSteps; ++step) {
    std::vector<int32_t> ids(B * S), tt(B * S, 0), am(B * S, 1), labels(B), ex(B);
    for (int b = 0; b < B; ++b) {
      bool has = rng() % 2;
      for (int s = 0; s < S; ++s) ids[b * S + s] = 6 + int32_t(rng() % 26);
      if (has) ids[b * S + 1 + rng() % (S - 1)] = 5;
      ids[b * S] = 2;
      labels[b] = has;
      ex[b] = step * B + b;
    }
    BertBatch batch{Tensor::from_host(ids, {B, S}), Tensor::from_host(tt, {B, S}),
                    Tensor::from_host(am, {B, S}), Tensor::from_host(labels, {B}),
                    Tensor::from_host(ex, {B})};
    model.zero_grad();
    StepResult r = train_step(model, batch, StepOptions{true, 7, uint32_t(step), true}, tape);
    const float loss = float(r.loss);
    saved = r.saved_bytes;
    clip_grad_norm(opt.grads(), 1.0);
    opt.step(lr);
    if (step <= 10) first += loss / 10;
    if (step > kSteps - 10) last += loss / 10;
    if (step % 25 == 0) std::printf("step %d loss %.4f\n", step, loss);
  }
  std::printf("saved activations per step with Back Razor 'all': %lld bytes\n", (long long)saved);
  if (!(last < 0.5f * first)) {  // the task is learnable: the loss must at least halve
    std::printf("minimal_trainer: mean loss did not halve (first 10 steps %.4f, last 10 %.4f)\n", first, last);
    return 1;
  }

  // A checkpoint in Hugging Face's layout, read back into a fresh model and optimizer.
  TrainingArgs args;  // what training_args.json records; output_dir says where checkpoints go
  args.output_dir = (fs::temp_directory_path() / "bertrazor_minimal_trainer").string();
  fs::remove_all(args.output_dir);
  TrainerState state;
  state.global_step = kSteps;
  const std::string dir = save_checkpoint(model, opt, state, args, ResumePoint{1, 0});
  BertForSequenceClassification reloaded(cfg, Device::cpu);
  Optimizer reloaded_opt(reloaded, adamw);
  TrainerState reloaded_state;
  load_checkpoint(dir, reloaded, reloaded_opt, reloaded_state, 1);
  bool same = reloaded_opt.num_steps() == kSteps;
  std::vector<Tensor> a = model.params().all(), b = reloaded.params().all();
  for (size_t i = 0; i < a.size(); ++i) same = same && a[i].to_vector<float>() == b[i].to_vector<float>();
  fs::remove_all(args.output_dir);
  if (!same) {
    std::printf("minimal_trainer: the checkpoint in %s did not restore the model\n", dir.c_str());
    return 1;
  }
  std::printf("minimal_trainer: ok (mean loss first 10 steps %.4f, last 10 %.4f; checkpoint restored)\n",
              first, last);
  return 0;
}
