#include "models/model_path.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "core/error.h"

namespace br {

namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string home() { return env("HOME"); }

std::string expand_user(const std::string& p) {
  if (p == "~" || p.rfind("~/", 0) == 0) {
    std::string h = home();
    if (!h.empty()) return h + p.substr(1);
  }
  return p;
}

bool has_config(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "config.json", ec);
}

std::vector<std::string> hub_caches() {
  std::vector<std::string> roots;
  auto add = [&](const std::string& r) {
    if (r.empty()) return;
    for (const std::string& seen : roots)
      if (seen == r) return;
    roots.push_back(r);
  };
  if (!env("HF_HUB_CACHE").empty()) add(expand_user(env("HF_HUB_CACHE")));
  if (!env("HF_HOME").empty()) add(expand_user(env("HF_HOME")) + "/hub");
  if (!env("XDG_CACHE_HOME").empty()) add(expand_user(env("XDG_CACHE_HOME")) + "/huggingface/hub");
  if (!home().empty()) add(home() + "/.cache/huggingface/hub");
  return roots;
}

std::string project_models_dir() {
  if (!env("BERTRAZOR_CACHE").empty()) return expand_user(env("BERTRAZOR_CACHE")) + "/models";
  return home().empty() ? std::string() : home() + "/.cache/bertrazor/models";
}

// The snapshot folder of a hub cache repo folder, or "" with `why` set.
std::string hub_snapshot(const fs::path& repo, std::string& why) {
  std::error_code ec;
  if (!fs::is_directory(repo, ec)) {
    why = "no such folder";
    return {};
  }
  fs::path ref = repo / "refs" / "main";
  if (fs::is_regular_file(ref, ec)) {
    std::ifstream in(ref);
    std::string rev;
    std::getline(in, rev);
    while (!rev.empty() && (rev.back() == '\n' || rev.back() == '\r' || rev.back() == ' '))
      rev.pop_back();
    fs::path snap = repo / "snapshots" / rev;
    if (!rev.empty() && has_config(snap)) return snap.string();
    why = "refs/main names revision '" + rev + "', but " + (snap / "config.json").string() +
          " does not exist";
    return {};
  }
  std::vector<fs::path> snaps;
  if (fs::is_directory(repo / "snapshots", ec))
    for (const auto& d : fs::directory_iterator(repo / "snapshots", ec))
      if (has_config(d.path())) snaps.push_back(d.path());
  if (snaps.size() == 1) return snaps[0].string();
  why = snaps.empty() ? "no refs/main and no snapshot with config.json"
                      : "no refs/main and " + std::to_string(snaps.size()) +
                            " snapshots with config.json (ambiguous)";
  return {};
}

}  // namespace

std::vector<std::string> model_search_roots() {
  std::vector<std::string> roots = hub_caches();
  std::string p = project_models_dir();
  if (!p.empty()) roots.push_back(p);
  return roots;
}

std::string resolve_model_path(const std::string& name_or_path) {
  BR_CHECK(!name_or_path.empty(), "resolve_model_path: empty model name");
  std::string path = expand_user(name_or_path);
  std::vector<std::string> tried;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (has_config(path)) return path;
    tried.push_back(path + " (a folder, but without config.json)");
  } else {
    tried.push_back(path + " (no such folder)");
  }

  // Hub ids are "name" or "org/name", neither part empty nor a relative-path component.
  bool hub_id = true;
  size_t slash = name_or_path.find('/');
  std::string org = slash == std::string::npos ? "" : name_or_path.substr(0, slash);
  std::string name = slash == std::string::npos ? name_or_path : name_or_path.substr(slash + 1);
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." ||
      (slash != std::string::npos && (org.empty() || org == "." || org == ".." || org == "~")))
    hub_id = false;

  if (hub_id) {
    std::string repo = "models--" + (org.empty() ? name : org + "--" + name);
    for (const std::string& root : hub_caches()) {
      fs::path dir = fs::path(root) / repo;
      std::string why;
      std::string snap = hub_snapshot(dir, why);
      if (!snap.empty()) return snap;
      tried.push_back(dir.string() + " (" + why + ")");
    }
    std::string models = project_models_dir();
    if (!models.empty()) {
      std::vector<fs::path> candidates;
      if (!org.empty()) candidates.push_back(fs::path(models) / org / name);
      candidates.push_back(fs::path(models) / name);
      for (const fs::path& dir : candidates) {
        if (has_config(dir)) return dir.string();
        tried.push_back(dir.string() + (fs::is_directory(dir, ec) ? " (no config.json)" : " (no such folder)"));
      }
    }
  }

  std::string list;
  for (const std::string& t : tried) list += "\n  " + t;
  fail("resolve_model_path: cannot find model '{}' offline (it needs a folder with config.json); "
       "looked in:{}\nFor all-MiniLM-L6-v2, tools/get_model.sh fetches it into the project cache.",
       name_or_path, list);
}

}  // namespace br
