// BertConfig: the fields of Hugging Face's config.json (transformers BertConfig) that shape the model
// or the classification head, read with errors naming the file and the key, and written back so that
// transformers loads the folder as BertForSequenceClassification. Keys not modelled here are kept and
// written back unchanged.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace br {

struct BertConfig {
  int64_t vocab_size = 30522;                 // V
  int64_t hidden_size = 768;                  // H
  int64_t num_hidden_layers = 12;             // L
  int64_t num_attention_heads = 12;           // N; head dim D = H / N
  int64_t intermediate_size = 3072;           // F
  std::string hidden_act = "gelu";            // exact erf GELU; the only activation supported
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double initializer_range = 0.02;
  double layer_norm_eps = 1e-12;
  int64_t pad_token_id = 0;
  std::string position_embedding_type = "absolute";  // the only one supported
  std::optional<double> classifier_dropout;           // null: the head uses hidden_dropout_prob
  std::string model_type = "bert";
  std::vector<std::string> architectures;
  std::optional<std::string> finetuning_task;
  // "regression" | "single_label_classification" | "multi_label_classification"; empty = unset
  std::string problem_type;
  // id2label[i] is the name of label i; num_labels() == id2label.size(). HF's default is two
  // labels LABEL_0, LABEL_1. label2id is the inverse map.
  std::vector<std::string> id2label = {"LABEL_0", "LABEL_1"};
  std::map<std::string, int64_t> label2id = {{"LABEL_0", 0}, {"LABEL_1", 1}};
  nlohmann::json extra = nlohmann::json::object();  // unmodelled keys, written back as read

  int64_t num_labels() const { return int64_t(id2label.size()); }
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  // Replaces the labels with `labels` (label2id follows); LABEL_i names when `labels` is empty.
  void set_labels(const std::vector<std::string>& labels);
  void set_num_labels(int64_t n);  // LABEL_0 .. LABEL_{n-1}

  // Reads a config.json; `origin` names the source in error messages.
  static BertConfig from_json(const nlohmann::json& j, const std::string& origin);
  // The same from a config.json's text (what from_json_file reads; the fuzz target's entry).
  static BertConfig from_json_text(std::string_view text, const std::string& origin);
  static BertConfig from_json_file(const std::string& path);
  // Checks the invariants (positive sizes, H % N == 0, supported activation and position
  // embedding, labels consistent); from_json calls it, and so does write_json_file.
  void validate(const std::string& origin) const;

  // The config.json transformers expects: architectures [BertForSequenceClassification] unless
  // set, model_type "bert", id2label/label2id with string keys, torch_dtype and dtype "float32",
  // transformers_version; keys sorted, indent 2, as save_pretrained writes them.
  nlohmann::json to_json() const;
  void write_json_file(const std::string& path) const;  // via path.tmp + rename
};

// The transformers version the written config.json claims (the baseline run_glue.py's).
inline constexpr const char* kTransformersVersion = "4.11.0.dev0";

}  // namespace br
