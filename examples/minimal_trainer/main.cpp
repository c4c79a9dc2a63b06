// A trainer of your own, linking the installed bertrazor package: a small random BERT learns, with
// Back Razor on, whether a sequence contains token 5. Prints the loss and the saved-activation bytes.
#include <cstdio>
#include <random>
#include <vector>

#include "core/allocator.h"
#include "models/tape.h"
#include "kernels/adamw.h"
#include "kernels/grad_norm.h"
#include "models/bert.h"

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

  std::vector<Tensor> params = model.params().all(), grads = model.grads().all(), ms, vs;
  std::vector<bool> decay;
  for (auto& [name, p] : model.params().named()) {
    ms.push_back(Tensor::zeros(p.shape(), DType::f32, Device::cpu, MemCategory::optimizer_state));
    vs.push_back(Tensor::zeros(p.shape(), DType::f32, Device::cpu, MemCategory::optimizer_state));
    decay.push_back(name.find("bias") == std::string::npos && name.find("LayerNorm") == std::string::npos);
  }
  AdamWConfig opt;
  opt.lr = 3e-3f;
  opt.weight_decay = 0.01f;

  const int B = 16, S = 12, kSteps = 150;
  std::mt19937 rng(0);
  float first = 0, last = 0;
  int64_t saved = 0;
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
    StepOptions so{true, 7, uint32_t(step), true};
    Tape tape(Device::cpu);
    ForwardResult fwd = model.forward(batch, so, &tape);
    Tensor logits = fwd.logits;
    float loss = model.loss(logits, batch.labels).to_vector<float>()[0];
    saved = tape.bytes();
    model.grads().zero_();
    model.backward(batch, so, tape, fwd.record, model.loss_backward(logits, batch.labels, 1.0f));
    clip_grad_norm(grads, 1.0);
    adamw_step(params, grads, ms, vs, decay, opt, step);
    if (step <= 10) first += loss / 10;
    if (step > kSteps - 10) last += loss / 10;
    if (step % 25 == 0) std::printf("step %d loss %.4f\n", step, loss);
  }
  std::printf("saved activations per step with Back Razor 'all': %lld bytes\n", (long long)saved);
  if (!(last < 0.5f * first)) {  // the task is learnable: the loss must at least halve
    std::printf("minimal_trainer: mean loss did not halve (first 10 steps %.4f, last 10 %.4f)\n", first, last);
    return 1;
  }
  std::printf("minimal_trainer: ok (mean loss first 10 steps %.4f, last 10 %.4f)\n", first, last);
  return 0;
}
