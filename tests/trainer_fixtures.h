#pragma once
// What the end-to-end trainer tests share (tests/train/test_trainer.cpp, test_preempt.cpp): a
// temporary folder, a tiny random BERT with the committed tiny vocabulary, RTE-layout synthetic
// data, and a model file's tensors.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "harness.h"
#include "models/bert.h"
#include "models/bert_io.h"
#include "models/safetensors.h"

#ifndef BERTRAZOR_SOURCE_DIR
#error "BERTRAZOR_SOURCE_DIR must name the source tree (tests/data/tiny_vocab.txt)"
#endif

namespace br::test {

// A fresh empty folder under the system temp folder, removed at the end.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name) {
    path = std::filesystem::temp_directory_path() /
           fmt::format("bertrazor_{}_{}_{}", name, ::getpid(), fresh_seed() % 1000000);
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// root/model: a 2-layer random BERT (H = hidden, F = intermediate, V = 35, 2 labels, RTE's names),
// initialised from seed 3, with tests/data/tiny_vocab.txt.
inline std::filesystem::path make_model(const std::filesystem::path& root, int hidden = 16, int intermediate = 24) {
  std::filesystem::path dir = root / "model";
  BertConfig c;
  c.vocab_size = 35;
  c.hidden_size = hidden;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = intermediate;
  c.max_position_embeddings = 32;
  c.set_labels({"entailment", "not_entailment"});
  BertForSequenceClassification m(c, Device::cpu);
  m.init_weights(3);
  save_pretrained(m, dir.string());
  std::filesystem::copy_file(std::filesystem::path(BERTRAZOR_SOURCE_DIR) / "tests/data/tiny_vocab.txt",
                             dir / "vocab.txt");
  return dir;
}

// root/RTE: train.tsv (n_train rows), dev.tsv and an unlabeled test.tsv (n_dev rows each) in GLUE's
// RTE layout, drawn from a fixed seed. min_words: the shortest first sentence (20 fills
// max_seq_length 24, so batches hold no padding).
inline std::filesystem::path make_data(const std::filesystem::path& root, int n_train = 40, int n_dev = 12,
                                       int min_words = 3) {
  std::filesystem::path dir = root / "RTE";
  std::filesystem::create_directories(dir);
  const char* words[] = {"the", "hello", "world", "cafe", "resume", "a", "b", "x", "unaffable"};
  std::mt19937 rng(5);
  auto sentence = [&](int len) {
    std::string s;
    for (int i = 0; i < len; ++i) s += std::string(i ? " " : "") + words[rng() % 9];
    return s + " .";
  };
  for (auto [name, n] : {std::pair<const char*, int>{"train.tsv", n_train}, {"dev.tsv", n_dev},
                          {"test.tsv", n_dev}}) {
    const bool test = std::string(name) == "test.tsv";
    std::ofstream f(dir / name);
    f << "index\tsentence1\tsentence2" << (test ? "" : "\tlabel") << "\n";
    for (int i = 0; i < n; ++i) {
      bool ent = rng() % 2;
      f << i << "\t" << sentence(min_words + int(rng() % 6)) << "\t" << (ent ? "hello world" : sentence(2));
      if (!test) f << "\t" << (ent ? "entailment" : "not_entailment");
      f << "\n";
    }
  }
  return dir;
}

// Every tensor of a model file; without_key_bias leaves out the key biases: their gradient is exactly
// zero in exact arithmetic (softmax is shift invariant), so AdamW turns rounding noise into +-lr
// steps, and runs that sum in a different order disagree on them.
inline std::vector<std::vector<float>> weights(const std::filesystem::path& file, bool without_key_bias = false) {
  SafetensorsFile f = SafetensorsFile::open(file.string());
  std::vector<std::vector<float>> r;
  for (const SafetensorsEntry& e : f.entries())
    if (!without_key_bias || e.name.find("attention.self.key.bias") == std::string::npos)
      r.push_back(f.load(e.name).to_vector<float>());
  return r;
}

}  // namespace br::test
