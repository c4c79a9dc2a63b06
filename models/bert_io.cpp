#include "models/bert_io.h"

#include <filesystem>
#include <map>
#include <set>

#include "kernels/cast.h"
#include "models/safetensors.h"

namespace fs = std::filesystem;

namespace br {

namespace {

// Every spelling a checkpoint may use for one of our parameter names.
std::vector<std::string> candidate_names(const std::string& name) {
  std::vector<std::string> base = {name};
  if (name.rfind("bert.", 0) == 0) base.push_back(name.substr(5));
  std::vector<std::string> out;
  for (const std::string& b : base) {
    out.push_back(b);
    size_t ln = b.find("LayerNorm.");
    if (ln != std::string::npos) {
      std::string g = b;
      if (g.size() >= 7 && g.compare(g.size() - 7, 7, ".weight") == 0)
        out.push_back(g.substr(0, g.size() - 7) + ".gamma");
      if (g.size() >= 5 && g.compare(g.size() - 5, 5, ".bias") == 0)
        out.push_back(g.substr(0, g.size() - 5) + ".beta");
    }
  }
  return out;
}

bool optional_param(const std::string& name) {
  return name.rfind("bert.pooler.", 0) == 0 || name.rfind("classifier.", 0) == 0;
}

}  // namespace

LoadReport load_safetensors_weights(BertForSequenceClassification& model, const std::string& path,
                                    uint64_t seed) {
  SafetensorsFile f = SafetensorsFile::open(path);
  LoadReport report;
  std::set<std::string> used;
  bool classifier_missing = false, pooler_missing = false;
  for (auto& [name, t] : model.params().named()) {
    std::string found;
    for (const std::string& c : candidate_names(name))
      if (f.has(c)) {
        found = c;
        break;
      }
    if (found.empty()) {
      BR_CHECK(optional_param(name), "{}: tensor '{}' is missing (looked for {})", path, name,
               fmt::join(candidate_names(name), ", "));
      report.initialized.push_back(name);
      if (name.rfind("classifier.", 0) == 0) classifier_missing = true;
      else pooler_missing = true;
      continue;
    }
    used.insert(found);
    Tensor v = f.load_as(found, t.shape(), t.dtype(), Device::cpu, MemCategory::workspace);
    t.copy_from(v);
  }
  if (classifier_missing) model.init_classifier(seed);
  if (pooler_missing) model.init_pooler(seed);
  for (const SafetensorsEntry& e : f.entries())
    if (!used.count(e.name)) report.unused.push_back(e.name);
  return report;
}

void save_pretrained(const BertForSequenceClassification& model, const std::string& dir) {
  fs::create_directories(dir);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (auto& [name, t] : model.params().named()) {
    if (t.dtype() == DType::f32) tensors.emplace_back(name, t);
    else tensors.emplace_back(name, cast(t.device() == Device::cpu ? t : t.to(Device::cpu), DType::f32));
  }
  write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors);
  BertConfig c = model.config();
  c.architectures = {"BertForSequenceClassification"};
  if (c.problem_type.empty())
    c.problem_type = c.num_labels() == 1 ? "regression" : "single_label_classification";
  c.write_json_file((fs::path(dir) / "config.json").string());
}

BertForSequenceClassification from_pretrained(const std::string& dir, Device device,
                                              const std::vector<std::string>& labels,
                                              uint64_t seed, LoadReport* report) {
  BertConfig c = BertConfig::from_json_file((fs::path(dir) / "config.json").string());
  if (!labels.empty()) c.set_labels(labels);
  BertForSequenceClassification m(c, device, DType::f32);
  fs::path weights = fs::path(dir) / "model.safetensors";
  BR_CHECK(fs::exists(weights), "{}: no model.safetensors in the model folder", dir);
  LoadReport r = load_safetensors_weights(m, weights.string(), seed);
  if (report) *report = r;
  return m;
}

}  // namespace br
