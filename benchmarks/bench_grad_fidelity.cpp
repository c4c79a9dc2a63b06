// How far a Back Razor policy moves the gradient, on real data: for the first batches of a GLUE
// task's training set (shuffled by --seed), runs forward + backward once with every site dense
// and once per policy — same batch, same dropout masks (they are keyed by example, step and
// site), the forward is exact — and compares the flat gradient vectors. Prints, per policy, the
// cosine similarity with the dense gradient and the relative error ||g - g_dense|| / ||g_dense||,
// for the whole model and per gradient group (head = pooler + classifier, each encoder layer,
// embeddings), averaged over the batches; plus the policy's saved-activation bytes vs dense.
//
//   bench_grad_fidelity --model_name_or_path M --data_dir D [--task_name rte] [--batches 8]
//       [--batch 16] [--max_seq_length 128] [--seed 42] [--single_sites]
//       [--policy "all"] [--policy "all|gelu_input=low:fp16"] ...
// A policy is a preset name (none, seed, all, balanced), optionally followed by `|` and per-site
// overrides (BackRazorPolicy::apply_overrides). --single_sites adds one policy per site: only
// that site sparse (fp16, ratio 0.8), to attribute the error to sites. --compare_padding runs every
// policy twice: as given (sparse sites rank real tokens only, the default) and with
// `skip_padding = false` (padding ranked too, as the reference does), labelled "[pad ranked]".
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "models/tape.h"
#include "models/bert.h"
#include "models/bert_io.h"
#include "models/config.h"
#include "models/model_path.h"
#include "train/batch.h"
#include "train/glue.h"
#include "train/wordpiece.h"

using namespace br;
namespace fs = std::filesystem;

namespace {

struct Args {
  std::string model, data_dir, task = "rte";
  int batches = 8, batch = 16, max_seq = 128;
  uint64_t seed = 42;
  bool single_sites = false;
  bool compare_padding = false;
  std::vector<std::string> policies;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    auto value = [&]() -> std::string {
      BR_CHECK(i + 1 < argc, "{} needs a value", f);
      return argv[++i];
    };
    if (f == "--model_name_or_path") a.model = value();
    else if (f == "--data_dir") a.data_dir = value();
    else if (f == "--task_name") a.task = value();
    else if (f == "--batches") a.batches = std::stoi(value());
    else if (f == "--batch") a.batch = std::stoi(value());
    else if (f == "--max_seq_length") a.max_seq = std::stoi(value());
    else if (f == "--seed") a.seed = std::stoull(value());
    else if (f == "--single_sites") a.single_sites = true;
    else if (f == "--compare_padding") a.compare_padding = true;
    else if (f == "--policy") a.policies.push_back(value());
    else fail("unknown flag {} (see the comment at the top of bench_grad_fidelity.cpp)", f);
  }
  BR_CHECK(!a.model.empty() && !a.data_dir.empty(),
           "--model_name_or_path and --data_dir are required");
  if (a.policies.empty()) a.policies = {"seed", "all"};
  return a;
}

constexpr std::string_view kPadRanked = " [pad ranked]";

BackRazorPolicy policy_from(std::string spec) {
  const bool pad_ranked = spec.ends_with(kPadRanked);
  if (pad_ranked) spec.resize(spec.size() - kPadRanked.size());
  size_t bar = spec.find('|');
  BackRazorPolicy p = BackRazorPolicy::preset(spec.substr(0, bar));
  if (bar != std::string::npos) p.apply_overrides(spec.substr(bar + 1));
  p.skip_padding = !pad_ranked;
  return p;
}

struct Grad {
  std::vector<float> g;
  int64_t saved_bytes = 0;
};

Grad gradient(BertForSequenceClassification& m, const BertBatch& bb, uint32_t step) {
  StepOptions opt{true, 42, step, true};
  Tape tape(Device::cpu);
  ForwardResult fwd = m.forward(bb, opt, &tape);
  Tensor logits = fwd.logits;
  Grad r;
  r.saved_bytes = tape.bytes();
  m.grads().zero_();
  m.backward(bb, opt, tape, fwd.record, m.loss_backward(logits, bb.labels, 1.0f));
  r.g = m.grads_flat().to_vector<float>();
  return r;
}

// Agreement of a gradient g with the dense one over a range of the flat buffer.
struct Sums {
  double dot = 0, nd = 0, ng = 0, diff = 0;
  void add(const Sums& o) {
    dot += o.dot;
    nd += o.nd;
    ng += o.ng;
    diff += o.diff;
  }
  double cos() const { return nd > 0 && ng > 0 ? dot / std::sqrt(nd * ng) : 1.0; }
  double relerr() const { return nd > 0 ? std::sqrt(diff / nd) : 0.0; }
};

// Per gradient group g at index g + 1, and the whole model (their total) at index 0.
std::vector<Sums> sums_by_group(const std::vector<float>& dense, const std::vector<float>& g,
                                const std::vector<int64_t>& off) {
  std::vector<Sums> r(off.size());
  for (size_t grp = 0; grp + 1 < off.size(); ++grp) {
    Sums& t = r[grp + 1];
    for (int64_t k = off[grp]; k < off[grp + 1]; ++k) {
      double x = dense[size_t(k)], y = g[size_t(k)];
      t.dot += x * y;
      t.nd += x * x;
      t.ng += y * y;
      t.diff += (x - y) * (x - y);
    }
    r[0].add(t);
  }
  return r;
}

// Means over batches of one policy's cosine and relative error (per slot of sums_by_group) and
// saved bytes.
struct Tally {
  std::vector<double> cos, err;
  double bytes = 0;
  void add(const std::vector<Sums>& sums, int64_t saved_bytes) {
    cos.resize(sums.size());
    err.resize(sums.size());
    for (size_t i = 0; i < sums.size(); ++i) {
      cos[i] += sums[i].cos();
      err[i] += sums[i].relerr();
    }
    bytes += double(saved_bytes);
  }
};

void print_table(const Args& a, const std::string& dir, const std::vector<std::string>& specs,
                 const std::vector<Tally>& t, int L) {
  const int G = L + 2;
  auto group_name = [&](int g) {
    return g == 0 ? std::string("head") : g == G - 1 ? std::string("emb")
                                                     : fmt::format("L{}", L - g);
  };
  fmt::print("{} batches of {} from {} train (max_seq_length {}, seed {}), model {}\n\n",
             a.batches, a.batch, a.task, a.max_seq, a.seed, dir);
  fmt::print("{:<44} {:>7} {:>8} {:>8}", "policy", "bytes", "cos", "relerr");
  for (int g = 0; g < G; ++g) fmt::print(" {:>6}", group_name(g));
  fmt::print("   (per-group cos)\n");
  const double n = a.batches;
  for (size_t p = 0; p < specs.size(); ++p) {
    fmt::print("{:<44} {:>7.3f} {:>8.5f} {:>8.4f}", specs[p], t[p].bytes / t[0].bytes,
               t[p].cos[0] / n, t[p].err[0] / n);
    for (int g = 0; g < G; ++g) fmt::print(" {:>6.4f}", t[p].cos[size_t(g) + 1] / n);
    fmt::print("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  retain_freed_host_memory();
  try {
    Args a = parse(argc, argv);
    std::string dir = resolve_model_path(a.model);
    BertConfig c = BertConfig::from_json_file((fs::path(dir) / "config.json").string());
    const GlueTask& task = glue_task(a.task);
    c.set_num_labels(task.num_labels());
    BertForSequenceClassification m(c, Device::cpu, DType::f32);
    load_safetensors_weights(m, (fs::path(dir) / "model.safetensors").string(), a.seed);
    auto tok = WordPieceTokenizer::from_vocab_file((fs::path(dir) / "vocab.txt").string());
    std::vector<Example> train = load_glue_split(task, a.data_dir, Split::train).at(0);
    const int32_t pad_id = tok.pad_id();
    std::vector<Encoding> encodings;
    for (const Example& x : train)
      encodings.push_back(tok.encode(x.text_a, x.text_b ? &*x.text_b : nullptr, a.max_seq, false));
    std::vector<int64_t> order(train.size());
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(a.seed);
    std::shuffle(order.begin(), order.end(), rng);

    std::vector<std::string> specs = {"none"};
    for (const std::string& p : a.policies) specs.push_back(p);
    if (a.single_sites)
      for (int s = 0; s < kSites; ++s)
        specs.push_back(fmt::format("none|{}=sparse:fp16:0.8", site_name(Site(s))));
    if (a.compare_padding)
      for (size_t i = 1, n = specs.size(); i < n; ++i)
        specs.push_back(specs[i] + std::string(kPadRanked));

    std::vector<Tally> tally(specs.size());
    for (int b = 0; b < a.batches; ++b) {
      std::vector<int64_t> idx;
      for (int i = 0; i < a.batch; ++i)
        idx.push_back(order[size_t(b * a.batch + i) % order.size()]);
      BertBatch bb = collate(train, encodings, idx, Device::cpu, task.is_regression(), pad_id);
      Grad dense;
      for (size_t p = 0; p < specs.size(); ++p) {
        m.policy() = policy_from(specs[p]);
        Grad g = gradient(m, bb, uint32_t(b));
        if (p == 0) dense = g;
        tally[p].add(sums_by_group(dense.g, g.g, m.grad_group_offsets()), g.saved_bytes);
      }
      std::fprintf(stderr, "batch %d/%d done\n", b + 1, a.batches);
    }
    print_table(a, dir, specs, tally, c.num_hidden_layers);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_grad_fidelity: %s\n", e.what());
    return 1;
  }
}
