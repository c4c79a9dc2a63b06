// BertConfig (config.json in and out) and offline model path resolution.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

#include "harness.h"
#include "models/config.h"
#include "models/model_path.h"

namespace fs = std::filesystem;
using br::BertConfig;
using Catch::Matchers::Contains;

namespace {

const std::string kShared = std::string(BERTRAZOR_SOURCE_DIR) + "/../shared/models/";

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("br_cfg_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& f) const { return (path / f).string(); }
};

void write_text(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Sets (or unsets, with nullopt) an environment variable for the scope, restoring it after.
struct EnvVar {
  std::string name;
  std::optional<std::string> old;
  EnvVar(std::string n, std::optional<std::string> v) : name(std::move(n)) {
    if (const char* o = std::getenv(name.c_str())) old = o;
    set(v);
  }
  void set(const std::optional<std::string>& v) {
    if (v) setenv(name.c_str(), v->c_str(), 1);
    else unsetenv(name.c_str());
  }
  ~EnvVar() { set(old); }
};

BertConfig parse(const std::string& text) {
  return BertConfig::from_json(nlohmann::json::parse(text), "test.json");
}

}  // namespace

TEST_CASE("config: bert-base-uncased and bert-large-uncased") {
  std::string base = kShared + "bert-base-uncased/config.json";
  if (!fs::exists(base)) {
    br::test::skip("shared/models is not next to the source tree");
    return;
  }
  BertConfig c = BertConfig::from_json_file(base);
  CHECK(c.vocab_size == 30522);
  CHECK(c.hidden_size == 768);
  CHECK(c.num_hidden_layers == 12);
  CHECK(c.num_attention_heads == 12);
  CHECK(c.head_dim() == 64);
  CHECK(c.intermediate_size == 3072);
  CHECK(c.hidden_act == "gelu");
  CHECK(c.hidden_dropout_prob == 0.1);
  CHECK(c.attention_probs_dropout_prob == 0.1);
  CHECK(c.max_position_embeddings == 512);
  CHECK(c.type_vocab_size == 2);
  CHECK(c.initializer_range == 0.02);
  CHECK(c.layer_norm_eps == 1e-12);
  CHECK(c.pad_token_id == 0);
  CHECK(c.position_embedding_type == "absolute");
  CHECK_FALSE(c.classifier_dropout.has_value());
  CHECK(c.architectures == std::vector<std::string>{"BertForMaskedLM"});
  CHECK(c.num_labels() == 2);
  CHECK(c.id2label == std::vector<std::string>{"LABEL_0", "LABEL_1"});
  CHECK(c.extra.at("use_cache") == true);
  CHECK(c.extra.at("gradient_checkpointing") == false);
  CHECK_FALSE(c.extra.contains("hidden_size"));

  BertConfig l = BertConfig::from_json_file(kShared + "bert-large-uncased/config.json");
  CHECK(l.hidden_size == 1024);
  CHECK(l.num_hidden_layers == 24);
  CHECK(l.num_attention_heads == 16);
  CHECK(l.intermediate_size == 4096);
  CHECK(l.head_dim() == 64);
}

TEST_CASE("config: written for BertForSequenceClassification and read back equal") {
  BertConfig c = parse(R"({"hidden_size": 96, "num_attention_heads": 3, "num_hidden_layers": 2,
      "intermediate_size": 200, "vocab_size": 101, "classifier_dropout": 0.25, "use_cache": true,
      "_name_or_path": "x", "architectures": ["BertForMaskedLM"], "transformers_version": "4.6.0"})");
  c.set_labels({"entailment", "not_entailment", "a", "b", "c", "d", "e", "f", "g", "h", "k"});
  c.finetuning_task = "rte";
  c.problem_type = "single_label_classification";
  TempDir dir;
  c.write_json_file(dir / "config.json");
  CHECK_FALSE(fs::exists(dir / "config.json.tmp"));
  std::string text = read_text(dir / "config.json");
  nlohmann::json j = nlohmann::json::parse(text);
  CHECK(j.at("architectures") == nlohmann::json{"BertForSequenceClassification"});
  CHECK(j.at("model_type") == "bert");
  CHECK(j.at("id2label").at("0") == "entailment");
  CHECK(j.at("id2label").at("10") == "k");
  CHECK(j.at("label2id").at("not_entailment") == 1);
  CHECK(j.at("torch_dtype") == "float32");
  CHECK(j.at("dtype") == "float32");
  CHECK(j.at("transformers_version") == br::kTransformersVersion);
  CHECK(j.at("classifier_dropout") == 0.25);
  CHECK(j.at("use_cache") == true);
  CHECK(j.at("_name_or_path") == "x");
  CHECK_FALSE(j.contains("num_labels"));
  // json.dumps(indent=2, sort_keys=True) + "\n", as save_pretrained writes it.
  CHECK(text.rfind("{\n  \"_name_or_path\": \"x\",\n  \"architectures\": [\n", 0) == 0);
  CHECK(text.find("\"id2label\": {\n    \"0\": \"entailment\",\n    \"1\": \"not_entailment\",\n    \"10\": \"k\",") !=
        std::string::npos);
  CHECK(text.back() == '\n');

  BertConfig r = BertConfig::from_json_file(dir / "config.json");
  CHECK(r.hidden_size == 96);
  CHECK(r.num_attention_heads == 3);
  CHECK(r.num_labels() == 11);
  CHECK(r.id2label == c.id2label);
  CHECK(r.label2id == c.label2id);
  CHECK(r.classifier_dropout == 0.25);
  CHECK(r.finetuning_task == std::optional<std::string>("rte"));
  CHECK(r.problem_type == "single_label_classification");
  CHECK(r.to_json() == c.to_json());
}

TEST_CASE("config: labels from num_labels and id2label and label2id as transformers reads them") {
  BertConfig three = parse(R"({"num_labels": 3})");
  CHECK(three.id2label == std::vector<std::string>{"LABEL_0", "LABEL_1", "LABEL_2"});
  CHECK(three.label2id.at("LABEL_2") == 2);
  BertConfig named = parse(R"({"id2label": {"1": "pos", "0": "neg"}, "num_labels": 5})");
  CHECK(named.id2label == std::vector<std::string>{"neg", "pos"});
  CHECK(named.label2id == std::map<std::string, int64_t>{{"neg", 0}, {"pos", 1}});
  BertConfig l2i = parse(R"({"id2label": {"0": "a", "1": "b"}, "label2id": {"A": 0, "B": 1}})");
  CHECK(l2i.label2id.at("B") == 1);
  BertConfig reg = parse(R"({"num_labels": 1, "problem_type": "regression", "classifier_dropout": null})");
  CHECK(reg.num_labels() == 1);
  CHECK(reg.problem_type == "regression");
}

TEST_CASE("config: malformed files are errors naming the file and the key") {
  TempDir dir;
  write_text(dir / "broken.json", "{\"hidden_size\": 768,");
  CHECK_THROWS_WITH(BertConfig::from_json_file(dir / "broken.json"),
                    Contains("broken.json") && Contains("not valid JSON"));
  CHECK_THROWS_WITH(BertConfig::from_json_file(dir / "absent.json"), Contains("absent.json"));
  write_text(dir / "heads.json", R"({"hidden_size": 770, "num_attention_heads": 12})");
  CHECK_THROWS_WITH(BertConfig::from_json_file(dir / "heads.json"),
                    Contains("heads.json") && Contains("'hidden_size' 770") &&
                        Contains("'num_attention_heads' 12"));

  auto rejects = [](const std::string& text, const std::string& key) {
    INFO(text);
    CHECK_THROWS_WITH(parse(text), Contains("test.json") && Contains(key));
  };
  rejects("[1, 2]", "JSON object");
  rejects(R"({"hidden_act": "relu"})", "'hidden_act'");
  rejects(R"({"hidden_act": "gelu_new"})", "'hidden_act'");
  rejects(R"({"position_embedding_type": "relative_key"})", "'position_embedding_type'");
  rejects(R"({"model_type": "roberta"})", "'model_type'");
  rejects(R"({"vocab_size": "30522"})", "'vocab_size'");
  rejects(R"({"num_hidden_layers": 2.5})", "'num_hidden_layers'");
  rejects(R"({"num_hidden_layers": 0})", "'num_hidden_layers'");
  rejects(R"({"hidden_dropout_prob": 1.5})", "'hidden_dropout_prob'");
  rejects(R"({"layer_norm_eps": "tiny"})", "'layer_norm_eps'");
  rejects(R"({"pad_token_id": 30522})", "'pad_token_id'");
  rejects(R"({"classifier_dropout": "x"})", "'classifier_dropout'");
  rejects(R"({"id2label": {"0": "a", "2": "b"}})", "'id2label' key '2'");
  rejects(R"({"id2label": {"zero": "a"}})", "'id2label' key 'zero'");
  rejects(R"({"id2label": {"0": 5}})", "'id2label'");
  rejects(R"({"id2label": {"0": "a"}, "label2id": {"a": 3}})", "'label2id'");
  rejects(R"({"num_labels": 0})", "'num_labels'");
  rejects(R"({"problem_type": "ranking"})", "'problem_type'");
  rejects(R"({"architectures": "BertModel"})", "'architectures'");
}

TEST_CASE("model path: local folder then HF hub caches in order then the project cache") {
  TempDir t;
  EnvVar home("HOME", t / "home");
  EnvVar hub("HF_HUB_CACHE", t / "hubcache");
  EnvVar hf_home("HF_HOME", t / "hfhome");
  EnvVar xdg("XDG_CACHE_HOME", std::nullopt);
  EnvVar project("BERTRAZOR_CACHE", t / "brcache");

  auto snapshot = [&](const std::string& root, const std::string& repo, const std::string& rev,
                      bool ref) {
    std::string snap = root + "/" + repo + "/snapshots/" + rev;
    write_text(snap + "/config.json", "{}");
    if (ref) write_text(root + "/" + repo + "/refs/main", rev + "\n");
    return snap;
  };
  std::string in_hub = snapshot(t / "hubcache", "models--org--m", "aaa", true);
  snapshot(t / "hubcache", "models--org--m", "old", false);
  std::string in_hf_home = snapshot(t / "hfhome/hub", "models--org--m", "bbb", true);
  std::string in_home = snapshot(t / "home/.cache/huggingface/hub", "models--solo", "ccc", false);
  write_text(t / "brcache/models/tiny/config.json", "{}");
  write_text(t / "brcache/models/org2/nested/config.json", "{}");

  CHECK(br::resolve_model_path("org/m") == in_hub);
  {
    EnvVar no_hub("HF_HUB_CACHE", std::nullopt);
    CHECK(br::resolve_model_path("org/m") == in_hf_home);
  }
  CHECK(br::resolve_model_path("solo") == in_home);  // lone snapshot, no refs/main
  CHECK(br::resolve_model_path("tiny") == t / "brcache/models/tiny");
  CHECK(br::resolve_model_path("someone/tiny") == t / "brcache/models/tiny");
  CHECK(br::resolve_model_path("org2/nested") == t / "brcache/models/org2/nested");

  // A local folder with config.json wins, even over a cached hub id of the same name.
  write_text(t / "local/config.json", "{}");
  CHECK(br::resolve_model_path(t / "local") == t / "local");
  std::string cwd = fs::current_path().string();
  fs::create_directories(t / "work/org");
  write_text(t / "work/org/m/config.json", "{}");
  fs::current_path(t / "work");
  std::string rel = br::resolve_model_path("org/m");
  fs::current_path(cwd);
  CHECK(rel == "org/m");
  write_text(t / "home/mine/config.json", "{}");
  CHECK(br::resolve_model_path("~/mine") == t / "home/mine");

  // refs/main naming a missing snapshot is reported, and the search goes on.
  write_text(t / "hubcache/models--solo/refs/main", "gone\n");
  CHECK(br::resolve_model_path("solo") == in_home);

  try {
    br::resolve_model_path("nobody/nothing");
    FAIL("expected an error");
  } catch (const br::Error& e) {
    std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("'nobody/nothing'") != std::string::npos);
    CHECK(msg.find(t / "hubcache/models--nobody--nothing") != std::string::npos);
    CHECK(msg.find(t / "hfhome/hub/models--nobody--nothing") != std::string::npos);
    CHECK(msg.find(t / "home/.cache/huggingface/hub/models--nobody--nothing") != std::string::npos);
    CHECK(msg.find(t / "brcache/models/nobody/nothing") != std::string::npos);
    CHECK(msg.find(t / "brcache/models/nothing") != std::string::npos);
  }
  write_text(t / "noconfig/weights.bin", "");
  CHECK_THROWS_WITH(br::resolve_model_path(t / "noconfig"), Contains("without config.json"));
  CHECK_THROWS_WITH(br::resolve_model_path(""), Contains("empty"));

  {
    EnvVar no_project("BERTRAZOR_CACHE", std::nullopt);
    write_text(t / "home/.cache/bertrazor/models/viahome/config.json", "{}");
    CHECK(br::resolve_model_path("viahome") == t / "home/.cache/bertrazor/models/viahome");
  }
}
