#include "models/config.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"

namespace br {

namespace {

using nlohmann::json;

const std::set<std::string>& modelled_keys() {
  static const std::set<std::string> keys = {
      "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
      "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob",
      "max_position_embeddings", "type_vocab_size", "initializer_range", "layer_norm_eps",
      "pad_token_id", "position_embedding_type", "classifier_dropout", "model_type",
      "architectures", "finetuning_task", "problem_type", "id2label", "label2id", "num_labels",
      // Rewritten on every save.
      "torch_dtype", "dtype", "transformers_version"};
  return keys;
}

void read_int(const json& j, const char* key, int64_t& out, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end()) return;
  BR_CHECK(it->is_number_integer(), "config {}: '{}' must be an integer, got {}", origin, key,
           it->dump());
  out = it->get<int64_t>();
}

void read_double(const json& j, const char* key, double& out, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end()) return;
  BR_CHECK(it->is_number(), "config {}: '{}' must be a number, got {}", origin, key, it->dump());
  out = it->get<double>();
}

void read_string(const json& j, const char* key, std::string& out, const std::string& origin,
                 bool nullable = false) {
  auto it = j.find(key);
  if (it == j.end() || (nullable && it->is_null())) return;
  BR_CHECK(it->is_string(), "config {}: '{}' must be a string, got {}", origin, key, it->dump());
  out = it->get<std::string>();
}

std::string label_name(int64_t i) { return "LABEL_" + std::to_string(i); }

// More labels than any classification head is given; a bound so that a typo such as
// "num_labels": 3000000000 is an error, not billions of LABEL_i names.
constexpr int64_t kMaxLabels = int64_t(1) << 20;

}  // namespace

void BertConfig::set_labels(const std::vector<std::string>& labels) {
  id2label = labels;
  label2id.clear();
  for (size_t i = 0; i < id2label.size(); ++i) label2id[id2label[i]] = int64_t(i);
}

void BertConfig::set_num_labels(int64_t n) {
  BR_CHECK(n >= 1, "BertConfig::set_num_labels: {} labels, need at least 1", n);
  std::vector<std::string> names;
  for (int64_t i = 0; i < n; ++i) names.push_back(label_name(i));
  set_labels(names);
}

namespace {

// Labels as PretrainedConfig reads them: id2label wins; without it, num_labels (default 2) makes
// LABEL_i names; label2id defaults to the inverse of id2label.
void read_labels(const json& j, BertConfig& c, const std::string& origin) {
  if (auto it = j.find("id2label"); it != j.end() && !it->is_null()) {
    BR_CHECK(it->is_object() && !it->empty(),
             "config {}: 'id2label' must be a non-empty object {{\"0\": name, ...}}, got {}", origin,
             it->dump());
    std::vector<std::string> names(it->size());
    std::vector<bool> seen(it->size(), false);
    for (auto e = it->begin(); e != it->end(); ++e) {
      size_t used = 0;
      int64_t id = -1;
      try {
        id = std::stoll(e.key(), &used);
      } catch (const std::exception&) {
        used = 0;
      }
      BR_CHECK(used == e.key().size() && id >= 0 && id < int64_t(names.size()) && !seen[size_t(id)],
               "config {}: 'id2label' key '{}' is not one of the ids 0..{}", origin, e.key(),
               names.size() - 1);
      BR_CHECK(e.value().is_string(), "config {}: 'id2label' [{}] must be a string, got {}", origin,
               e.key(), e.value().dump());
      seen[size_t(id)] = true;
      names[size_t(id)] = e.value().get<std::string>();
    }
    c.set_labels(names);
  } else if (auto n = j.find("num_labels"); n != j.end()) {
    BR_CHECK(n->is_number_integer() && n->get<int64_t>() >= 1 && n->get<int64_t>() <= kMaxLabels,
             "config {}: 'num_labels' must be an integer in [1, {}], got {}", origin, kMaxLabels,
             n->dump());
    c.set_num_labels(n->get<int64_t>());
  }
  if (auto it = j.find("label2id"); it != j.end() && !it->is_null()) {
    BR_CHECK(it->is_object(), "config {}: 'label2id' must be an object {{name: id}}, got {}", origin,
             it->dump());
    c.label2id.clear();
    for (auto e = it->begin(); e != it->end(); ++e) {
      BR_CHECK(e.value().is_number_integer(), "config {}: 'label2id' ['{}'] must be an integer, got {}",
               origin, e.key(), e.value().dump());
      c.label2id[e.key()] = e.value().get<int64_t>();
    }
  }

}

}  // namespace

BertConfig BertConfig::from_json(const json& j, const std::string& origin) {
  BR_CHECK(j.is_object(), "config {}: top level must be a JSON object, got {}", origin,
           std::string(j.type_name()));
  BertConfig c;
  read_int(j, "vocab_size", c.vocab_size, origin);
  read_int(j, "hidden_size", c.hidden_size, origin);
  read_int(j, "num_hidden_layers", c.num_hidden_layers, origin);
  read_int(j, "num_attention_heads", c.num_attention_heads, origin);
  read_int(j, "intermediate_size", c.intermediate_size, origin);
  read_string(j, "hidden_act", c.hidden_act, origin);
  read_double(j, "hidden_dropout_prob", c.hidden_dropout_prob, origin);
  read_double(j, "attention_probs_dropout_prob", c.attention_probs_dropout_prob, origin);
  read_int(j, "max_position_embeddings", c.max_position_embeddings, origin);
  read_int(j, "type_vocab_size", c.type_vocab_size, origin);
  read_double(j, "initializer_range", c.initializer_range, origin);
  read_double(j, "layer_norm_eps", c.layer_norm_eps, origin);
  read_int(j, "pad_token_id", c.pad_token_id, origin);
  read_string(j, "position_embedding_type", c.position_embedding_type, origin);
  read_string(j, "model_type", c.model_type, origin);
  read_string(j, "problem_type", c.problem_type, origin, true);
  if (auto it = j.find("classifier_dropout"); it != j.end() && !it->is_null()) {
    BR_CHECK(it->is_number(), "config {}: 'classifier_dropout' must be a number or null, got {}",
             origin, it->dump());
    c.classifier_dropout = it->get<double>();
  }
  if (auto it = j.find("finetuning_task"); it != j.end() && !it->is_null()) {
    BR_CHECK(it->is_string(), "config {}: 'finetuning_task' must be a string or null, got {}",
             origin, it->dump());
    c.finetuning_task = it->get<std::string>();
  }
  if (auto it = j.find("architectures"); it != j.end() && !it->is_null()) {
    BR_CHECK(it->is_array(), "config {}: 'architectures' must be a list of strings, got {}", origin,
             it->dump());
    for (const json& a : *it) {
      BR_CHECK(a.is_string(), "config {}: 'architectures' must be a list of strings, got {}",
               origin, it->dump());
      c.architectures.push_back(a.get<std::string>());
    }
  }

  read_labels(j, c, origin);
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!modelled_keys().count(it.key())) c.extra[it.key()] = it.value();
  c.validate(origin);
  return c;
}

void BertConfig::validate(const std::string& origin) const {
  auto positive = [&](const char* key, int64_t v) {
    BR_CHECK(v > 0, "config {}: '{}' must be positive, got {}", origin, key, v);
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("intermediate_size", intermediate_size);
  positive("max_position_embeddings", max_position_embeddings);
  positive("type_vocab_size", type_vocab_size);
  BR_CHECK(hidden_size % num_attention_heads == 0,
           "config {}: 'hidden_size' {} is not a multiple of 'num_attention_heads' {}", origin,
           hidden_size, num_attention_heads);
  BR_CHECK(hidden_act == "gelu",
           "config {}: 'hidden_act' is \"{}\"; only \"gelu\" (exact erf GELU) is supported", origin,
           hidden_act);
  BR_CHECK(position_embedding_type == "absolute",
           "config {}: 'position_embedding_type' is \"{}\"; only \"absolute\" is supported", origin,
           position_embedding_type);
  BR_CHECK(model_type == "bert", "config {}: 'model_type' is \"{}\"; only \"bert\" is supported",
           origin, model_type);
  auto probability = [&](const char* key, double p) {
    BR_CHECK(p >= 0 && p < 1, "config {}: '{}' must be in [0, 1), got {}", origin, key, p);
  };
  probability("hidden_dropout_prob", hidden_dropout_prob);
  probability("attention_probs_dropout_prob", attention_probs_dropout_prob);
  if (classifier_dropout) probability("classifier_dropout", *classifier_dropout);
  BR_CHECK(layer_norm_eps > 0, "config {}: 'layer_norm_eps' must be positive, got {}", origin,
           layer_norm_eps);
  BR_CHECK(initializer_range >= 0, "config {}: 'initializer_range' must be >= 0, got {}", origin,
           initializer_range);
  BR_CHECK(pad_token_id >= 0 && pad_token_id < vocab_size,
           "config {}: 'pad_token_id' {} is outside the vocabulary [0, {})", origin, pad_token_id,
           vocab_size);
  BR_CHECK(problem_type.empty() || problem_type == "regression" ||
               problem_type == "single_label_classification" ||
               problem_type == "multi_label_classification",
           "config {}: 'problem_type' is \"{}\"; expected regression, single_label_classification "
           "or multi_label_classification",
           origin, problem_type);
  BR_CHECK(!id2label.empty(), "config {}: 'id2label' must name at least one label", origin);
  for (const auto& [name, id] : label2id)
    BR_CHECK(id >= 0 && id < num_labels(),
             "config {}: 'label2id' ['{}'] = {} is outside the {} labels of 'id2label'", origin, name,
             id, num_labels());
}

json BertConfig::to_json() const {
  json j = extra.is_object() ? extra : json::object();
  j["architectures"] = {"BertForSequenceClassification"};
  j["model_type"] = "bert";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["intermediate_size"] = intermediate_size;
  j["hidden_act"] = hidden_act;
  j["hidden_dropout_prob"] = hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
  j["max_position_embeddings"] = max_position_embeddings;
  j["type_vocab_size"] = type_vocab_size;
  j["initializer_range"] = initializer_range;
  j["layer_norm_eps"] = layer_norm_eps;
  j["pad_token_id"] = pad_token_id;
  j["position_embedding_type"] = position_embedding_type;
  j["classifier_dropout"] = classifier_dropout ? json(*classifier_dropout) : json(nullptr);
  if (finetuning_task) j["finetuning_task"] = *finetuning_task;
  if (!problem_type.empty()) j["problem_type"] = problem_type;
  json id2 = json::object(), l2i = json::object();
  for (size_t i = 0; i < id2label.size(); ++i) id2[std::to_string(i)] = id2label[i];
  for (const auto& [name, id] : label2id) l2i[name] = id;
  j["id2label"] = id2;
  j["label2id"] = l2i;
  j["torch_dtype"] = "float32";
  j["dtype"] = "float32";
  j["transformers_version"] = kTransformersVersion;
  return j;
}

BertConfig BertConfig::from_json_text(std::string_view text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("config {}: not valid JSON: {}", origin, e.what());
  }
  return from_json(j, origin);
}

BertConfig BertConfig::from_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  BR_CHECK(in, "config {}: cannot open: {}", path, std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json_text(ss.str(), path);
}

void BertConfig::write_json_file(const std::string& path) const {
  validate(path);
  std::string text = to_json().dump(2, ' ', true) + "\n";
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    BR_CHECK(out, "config {}: cannot create: {}", tmp, std::strerror(errno));
    out << text;
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      fail("config {}: writing failed", tmp);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    fail("config: cannot rename {} to {}: {}", tmp, path, why);
  }
}

}  // namespace br
