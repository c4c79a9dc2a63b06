#include "train/glue.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/text.h"

namespace br {
namespace {

// Column names in the original GLUE TSV headers (datasets glue.py text_features / label_column).
struct TsvLayout {
  std::string col_a, col_b, col_label;
};

struct TaskEntry {
  GlueTask task;
  TsvLayout tsv;
};

const std::vector<TaskEntry>& task_entries() {
  static const std::vector<TaskEntry> entries = {
      {{"cola", "sentence", "", {"unacceptable", "acceptable"}, {"matthews_correlation"}},
       {"sentence", "", "is_acceptable"}},
      {{"sst2", "sentence", "", {"negative", "positive"}, {"accuracy"}}, {"sentence", "", "label"}},
      {{"mrpc", "sentence1", "sentence2", {"not_equivalent", "equivalent"},
        {"accuracy", "f1", "combined_score"}},
       {"#1 String", "#2 String", "Quality"}},
      {{"qqp", "question1", "question2", {"not_duplicate", "duplicate"},
        {"accuracy", "f1", "combined_score"}},
       {"question1", "question2", "is_duplicate"}},
      {{"stsb", "sentence1", "sentence2", {}, {"pearson", "spearmanr", "combined_score"}},
       {"sentence1", "sentence2", "score"}},
      {{"mnli", "premise", "hypothesis", {"entailment", "neutral", "contradiction"}, {"accuracy"}},
       {"sentence1", "sentence2", "gold_label"}},
      {{"qnli", "question", "sentence", {"entailment", "not_entailment"}, {"accuracy"}},
       {"question", "sentence", "label"}},
      {{"rte", "sentence1", "sentence2", {"entailment", "not_entailment"}, {"accuracy"}},
       {"sentence1", "sentence2", "label"}},
      {{"wnli", "sentence1", "sentence2", {"not_entailment", "entailment"}, {"accuracy"}},
       {"sentence1", "sentence2", "label"}},
  };
  return entries;
}

const TaskEntry& entry_of(const GlueTask& task) {
  for (const TaskEntry& e : task_entries())
    if (e.task.name == task.name) return e;
  fail("glue: task '{}' is not a GLUE task", task.name);
}

// A data file's text without a leading UTF-8 byte-order mark.
void strip_bom(std::string& text) {
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
}

std::vector<std::string> split_tabs(std::string_view line) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    size_t t = line.find('\t', pos);
    out.emplace_back(line.substr(pos, t == std::string_view::npos ? std::string_view::npos : t - pos));
    if (t == std::string_view::npos) break;
    pos = t + 1;
  }
  return out;
}

std::string quoted_list(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", '" : "'") + v[i] + "'";
  return out;
}

// A class label as glue.py reads it: a ClassLabel name, else int(label) checked against the names.
int32_t class_id(const std::vector<std::string>& names, std::string_view raw, const std::string& where) {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == raw) return int32_t(i);
  std::optional<int64_t> v = to_int(raw);
  BR_CHECK(v && *v >= 0 && *v < int64_t(names.size()),
           "{}: unknown label '{}' (expected one of {} or an id in [0, {}))", where, raw,
           quoted_list(names), names.size());
  return int32_t(*v);
}

// The target is float32 (Example::value): a number beyond its range would train on inf.
float regression_value(std::string_view raw, const std::string& where) {
  std::optional<double> v = to_double(raw);
  BR_CHECK(v && std::isfinite(*v), "{}: bad number '{}' for a regression label", where, raw);
  BR_CHECK(std::fabs(*v) <= double(std::numeric_limits<float>::max()),
           "{}: regression label '{}' is outside float32's range", where, raw);
  return float(*v);
}

}  // namespace

const std::vector<GlueTask>& glue_tasks() {
  static const std::vector<GlueTask> tasks = [] {
    std::vector<GlueTask> t;
    for (const TaskEntry& e : task_entries()) t.push_back(e.task);
    return t;
  }();
  return tasks;
}

const std::vector<std::string>& glue_task_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const TaskEntry& e : task_entries()) n.push_back(e.task.name);
    return n;
  }();
  return names;
}

const GlueTask* find_glue_task(std::string_view name) {
  const std::string lower = ascii_lower(name);
  for (const GlueTask& t : glue_tasks())
    if (t.name == lower) return &t;
  return nullptr;
}

const GlueTask& glue_task(std::string_view name) {
  const GlueTask* t = find_glue_task(name);
  if (!t) fail("glue: unknown task '{}' (expected one of {})", name, fmt::join(glue_task_names(), ", "));
  return *t;
}

std::vector<GlueFile> glue_files(const GlueTask& task, Split split) {
  bool mnli = task.name == "mnli";
  switch (split) {
    case Split::train: return {{"train", "train.tsv"}};
    case Split::validation:
      if (mnli) return {{"validation_matched", "dev_matched.tsv"}, {"validation_mismatched", "dev_mismatched.tsv"}};
      return {{"validation", "dev.tsv"}};
    case Split::test:
      if (mnli) return {{"test_matched", "test_matched.tsv"}, {"test_mismatched", "test_mismatched.tsv"}};
      return {{"test", "test.tsv"}};
  }
  fail("glue_files: bad split");
}

std::vector<Example> load_glue_tsv(const GlueTask& task, const std::string& path, Split split) {
  return parse_glue_tsv(task, read_file(path), path, split);
}

std::vector<Example> parse_glue_tsv(const GlueTask& task, std::string text, const std::string& path,
                                    Split split) {
  const TsvLayout& layout = entry_of(task).tsv;
  strip_bom(text);
  BR_CHECK(!text.empty(), "{}:1: empty file, expected a {} TSV", path, task.name);

  // Universal newlines, as Python's open(): "\r\n", "\r" and "\n" all end a line.
  std::vector<std::pair<int64_t, std::string_view>> lines;
  {
    std::string_view all(text);
    int64_t line_no = 1;
    size_t pos = 0;
    while (pos < all.size()) {
      size_t e = all.find_first_of("\r\n", pos);
      size_t end = e == std::string_view::npos ? all.size() : e;
      if (end > pos) lines.emplace_back(line_no, all.substr(pos, end - pos));
      if (e == std::string_view::npos) break;
      pos = (all[e] == '\r' && e + 1 < all.size() && all[e + 1] == '\n') ? e + 2 : e + 1;
      ++line_no;
    }
  }
  BR_CHECK(!lines.empty(), "{}:1: no rows, expected a {} TSV", path, task.name);

  bool headerless = task.name == "cola" && split != Split::test;
  bool drop_incomplete = task.name == "qqp";
  size_t ncols = 4;
  int col_a = 3, col_b = -1, col_label = 1;
  size_t first = 0;
  if (!headerless) {
    std::vector<std::string> header = split_tabs(lines[0].second);
    auto find = [&](const std::string& name, bool required) {
      auto it = std::find(header.begin(), header.end(), name);
      BR_CHECK(it != header.end() || !required, "{}:1: header has no column '{}' for {} (header: {})",
               path, name, task.name, quoted_list(header));
      return it == header.end() ? -1 : int(it - header.begin());
    };
    ncols = header.size();
    col_a = find(layout.col_a, true);
    col_b = layout.col_b.empty() ? -1 : find(layout.col_b, true);
    col_label = find(layout.col_label, false);
    first = 1;
  }

  std::vector<Example> out;
  out.reserve(lines.size());
  for (size_t r = first; r < lines.size(); ++r) {
    auto [line_no, line] = lines[r];
    int64_t idx = int64_t(r - first);
    std::string where = fmt::format("{}:{}", path, line_no);
    std::vector<std::string> f = split_tabs(line);
    if (f.size() < ncols && drop_incomplete) continue;
    BR_CHECK(f.size() == ncols, "{}: expected {} columns, found {}", where, ncols, f.size());
    Example ex;
    ex.idx = idx;
    ex.text_a = f[size_t(col_a)];
    if (col_b >= 0) ex.text_b = f[size_t(col_b)];
    if (col_label >= 0) {
      const std::string& raw = f[size_t(col_label)];
      if (raw.empty() && drop_incomplete) continue;
      BR_CHECK(!raw.empty(), "{}: empty label in column '{}'", where, layout.col_label);
      if (task.is_regression())
        ex.value = regression_value(raw, where);
      else
        ex.label = class_id(task.label_names, raw, where);
    }
    out.push_back(std::move(ex));
  }
  return out;
}

std::vector<std::vector<Example>> load_glue_split(const GlueTask& task, const std::string& data_dir,
                                                  Split split) {
  std::vector<std::vector<Example>> out;
  for (const GlueFile& f : glue_files(task, split))
    out.push_back(load_glue_tsv(task, (std::filesystem::path(data_dir) / f.file_name).string(), split));
  return out;
}

int DataTable::column(std::string_view name) const {
  auto it = std::find(columns.begin(), columns.end(), name);
  return it == columns.end() ? -1 : int(it - columns.begin());
}

namespace {

// RFC 4180 with `delim`: header row, then records; quoted fields may hold delim, "" and newlines.
DataTable read_delimited(const std::string& path, const std::string& text, char delim) {
  DataTable t;
  t.path = path;
  size_t i = 0, n = text.size();
  int64_t line = 1;
  bool header = true;
  while (i < n) {
    int64_t start_line = line;
    std::vector<std::string> fields;
    std::string field;
    bool end_of_record = false;
    bool blank = true;
    while (!end_of_record) {
      if (i < n && text[i] == '"') {
        blank = false;
        int64_t quote_line = line;
        ++i;
        while (true) {
          BR_CHECK(i < n, "{}:{}: unterminated quoted field", path, quote_line);
          char c = text[i++];
          if (c == '"') {
            if (i < n && text[i] == '"') {
              field.push_back('"');
              ++i;
            } else {
              break;
            }
          } else {
            if (c == '\n') ++line;
            field.push_back(c);
          }
        }
        BR_CHECK(i >= n || text[i] == delim || text[i] == '\n' || text[i] == '\r',
                 "{}:{}: expected '{}' or a line end after a closing quote, found '{}'", path, line,
                 delim == '\t' ? "\\t" : std::string(1, delim), text[i]);
      } else {
        while (i < n && text[i] != delim && text[i] != '\n' && text[i] != '\r') field.push_back(text[i++]);
        if (!field.empty()) blank = false;
      }
      fields.push_back(std::move(field));
      field.clear();
      if (i < n && text[i] == delim) {
        blank = false;
        ++i;
      } else {
        if (i < n && text[i] == '\r') ++i;
        if (i < n && text[i] == '\n') ++i;
        ++line;
        end_of_record = true;
      }
    }
    if (blank) continue;
    if (header) {
      t.columns = std::move(fields);
      std::set<std::string> seen;
      for (const std::string& c : t.columns)
        BR_CHECK(seen.insert(c).second, "{}:{}: duplicate column '{}' in the header", path, start_line, c);
      header = false;
      continue;
    }
    BR_CHECK(fields.size() == t.columns.size(), "{}:{}: expected {} columns, found {}", path,
             start_line, t.columns.size(), fields.size());
    std::vector<DataTable::Cell> row;
    for (std::string& f : fields) row.push_back({std::move(f), DataTable::Kind::text});
    t.rows.push_back(std::move(row));
    t.lines.push_back(start_line);
  }
  BR_CHECK(!header, "{}:1: empty file, expected a header row", path);
  return t;
}

DataTable read_json(const std::string& path, const std::string& text) {
  DataTable t;
  t.path = path;
  std::vector<std::pair<int64_t, nlohmann::ordered_json>> objects;
  size_t first = text.find_first_not_of(" \t\r\n");
  BR_CHECK(first != std::string::npos, "{}:1: empty file, expected JSON objects", path);
  if (text[first] == '[') {
    nlohmann::ordered_json arr;
    try {
      arr = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail("{}: invalid JSON: {}", path, e.what());
    }
    int64_t k = 0;
    for (auto& o : arr) objects.emplace_back(++k, std::move(o));
  } else {
    size_t pos = 0;
    int64_t line_no = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      size_t end = nl == std::string::npos ? text.size() : nl;
      ++line_no;
      std::string_view line = trim(std::string_view(text).substr(pos, end - pos));
      pos = end + 1;
      if (line.empty()) continue;
      try {
        objects.emplace_back(line_no, nlohmann::ordered_json::parse(line));
      } catch (const nlohmann::json::exception& e) {
        fail("{}:{}: invalid JSON: {}", path, line_no, e.what());
      }
    }
  }
  for (const auto& [line_no, o] : objects) {
    BR_CHECK(o.is_object(), "{}:{}: expected a JSON object, found {}", path, line_no, o.type_name());
    for (auto it = o.begin(); it != o.end(); ++it)
      if (t.column(it.key()) < 0) t.columns.push_back(it.key());
  }
  BR_CHECK(!t.columns.empty(), "{}:1: no JSON objects with fields", path);
  for (const auto& [line_no, o] : objects) {
    std::vector<DataTable::Cell> row(t.columns.size(), DataTable::Cell{"", DataTable::Kind::null});
    for (auto it = o.begin(); it != o.end(); ++it) {
      DataTable::Cell& c = row[size_t(t.column(it.key()))];
      const nlohmann::ordered_json& v = it.value();
      if (v.is_string()) {
        c = {v.get<std::string>(), DataTable::Kind::string};
      } else if (v.is_number_integer() || v.is_boolean()) {
        c = {v.is_boolean() ? std::string(v.get<bool>() ? "1" : "0") : v.dump(), DataTable::Kind::integer};
      } else if (v.is_number_float()) {
        c = {v.dump(), DataTable::Kind::number};
      } else if (!v.is_null()) {
        fail("{}:{}: field '{}' holds a JSON {}, expected a string or a number", path, line_no,
             it.key(), v.type_name());
      }
    }
    t.rows.push_back(std::move(row));
    t.lines.push_back(line_no);
  }
  return t;
}

enum class LabelKind { none, integer, number, string };

// The label column's type as pandas / pyarrow infer it: all integers, else all numbers, else strings.
LabelKind label_kind(const DataTable& t, int col) {
  if (col < 0) return LabelKind::none;
  bool all_int = true, all_num = true;
  for (size_t r = 0; r < t.rows.size(); ++r) {
    const DataTable::Cell& c = t.rows[r][size_t(col)];
    BR_CHECK(c.kind != DataTable::Kind::null && !(c.kind == DataTable::Kind::text && trim(c.text).empty()),
             "{}:{}: missing label", t.path, t.lines[r]);
    switch (c.kind) {
      case DataTable::Kind::string: all_int = all_num = false; break;
      case DataTable::Kind::integer: break;
      case DataTable::Kind::number: all_int = false; break;
      default:
        if (!to_int(c.text)) all_int = false;
        if (!to_double(c.text)) all_num = false;
    }
  }
  return all_int ? LabelKind::integer : all_num ? LabelKind::number : LabelKind::string;
}

}  // namespace

DataTable read_data_file(const std::string& path) {
  std::string ext = ascii_lower(std::filesystem::path(path).extension().string());
  BR_CHECK(ext == ".csv" || ext == ".tsv" || ext == ".json" || ext == ".jsonl",
           "{}: unsupported data file extension '{}' (expected .csv, .tsv, .json or .jsonl)", path, ext);
  return parse_data_file(read_file(path), path);
}

DataTable parse_data_file(std::string text, const std::string& path) {
  std::string ext = ascii_lower(std::filesystem::path(path).extension().string());
  BR_CHECK(ext == ".csv" || ext == ".tsv" || ext == ".json" || ext == ".jsonl",
           "{}: unsupported data file extension '{}' (expected .csv, .tsv, .json or .jsonl)", path, ext);
  strip_bom(text);
  BR_CHECK(!text.empty(), "{}:1: empty file", path);
  if (ext == ".csv") return read_delimited(path, text, ',');
  if (ext == ".tsv") return read_delimited(path, text, '\t');
  return read_json(path, text);
}

TextColumns task_text_columns(const GlueTask& task) { return {task.key_a, task.key_b}; }

TextColumns choose_text_columns(const DataTable& train) {
  std::vector<std::string> non_label;
  for (const std::string& c : train.columns)
    if (c != "label") non_label.push_back(c);
  BR_CHECK(!non_label.empty(), "{}: no text column besides 'label'", train.path);
  if (std::count(non_label.begin(), non_label.end(), "sentence1") && std::count(non_label.begin(), non_label.end(), "sentence2"))
    return {"sentence1", "sentence2"};
  if (non_label.size() >= 2) return {non_label[0], non_label[1]};
  return {non_label[0], ""};
}

LabelScheme task_label_scheme(const GlueTask& task) { return {task.label_names, true}; }

LabelScheme infer_label_scheme(const DataTable& train) {
  int col = train.column("label");
  BR_CHECK(col >= 0, "{}: no 'label' column (columns: {})", train.path, quoted_list(train.columns));
  LabelKind kind = label_kind(train, col);
  LabelScheme s;
  if (kind == LabelKind::number) return s;
  if (kind == LabelKind::integer) {
    std::set<int64_t> values;
    for (const auto& row : train.rows) {
      int64_t v = *to_int(row[size_t(col)].text);
      if (v != -1) values.insert(v);
    }
    for (int64_t v : values) s.names.push_back(std::to_string(v));
  } else {
    std::set<std::string> values;
    for (const auto& row : train.rows) values.insert(row[size_t(col)].text);
    s.names.assign(values.begin(), values.end());
  }
  BR_CHECK(!s.names.empty(), "{}: no labeled rows to infer the label list from", train.path);
  return s;
}

std::vector<Example> load_examples(const DataTable& table, const TextColumns& columns,
                                   const LabelScheme& labels) {
  auto need = [&](const std::string& name) {
    int c = table.column(name);
    BR_CHECK(c >= 0, "{}: no column '{}' (columns: {})", table.path, name, quoted_list(table.columns));
    return c;
  };
  int col_a = need(columns.a);
  int col_b = columns.b.empty() ? -1 : need(columns.b);
  int col_label = table.column("label");
  int col_idx = table.column("idx");
  LabelKind kind = label_kind(table, col_label);
  BR_CHECK(!(labels.is_regression() && kind == LabelKind::string), "{}: regression labels must be numbers",
           table.path);
  std::vector<Example> out;
  out.reserve(table.rows.size());
  for (size_t r = 0; r < table.rows.size(); ++r) {
    const auto& row = table.rows[r];
    std::string where = fmt::format("{}:{}", table.path, table.lines[r]);
    auto text_of = [&](int c, const std::string& name) {
      const DataTable::Cell& cell = row[size_t(c)];
      BR_CHECK(cell.kind != DataTable::Kind::null, "{}: column '{}' is null", where, name);
      return cell.text;
    };
    Example ex;
    ex.text_a = text_of(col_a, columns.a);
    if (col_b >= 0) ex.text_b = text_of(col_b, columns.b);
    if (col_idx >= 0) {
      std::optional<int64_t> idx = to_int(row[size_t(col_idx)].text);
      BR_CHECK(idx.has_value(), "{}: bad idx '{}', expected an integer", where, row[size_t(col_idx)].text);
      ex.idx = *idx;
    } else {
      ex.idx = int64_t(r);
    }
    if (col_label >= 0) {
      const std::string& raw = row[size_t(col_label)].text;
      std::optional<int64_t> as_int = kind == LabelKind::string ? std::nullopt : to_int(raw);
      bool unlabeled = as_int && *as_int == -1;
      if (!unlabeled && labels.is_regression()) {
        float v = regression_value(raw, where);
        unlabeled = v == -1.0f;
        if (!unlabeled) ex.value = v;
      } else if (!unlabeled && kind == LabelKind::string) {
        if (labels.ids_as_stored) {
          ex.label = class_id(labels.names, raw, where);
        } else {
          auto it = std::find(labels.names.begin(), labels.names.end(), raw);
          BR_CHECK(it != labels.names.end(), "{}: unknown label '{}' (expected one of {})", where, raw,
                   quoted_list(labels.names));
          ex.label = int32_t(it - labels.names.begin());
        }
      } else if (!unlabeled) {
        BR_CHECK(as_int.has_value(), "{}: bad label '{}', expected an integer class label", where, raw);
        if (labels.ids_as_stored) {
          BR_CHECK(*as_int >= 0 && *as_int < int64_t(labels.names.size()),
                   "{}: label id {} outside [0, {}) ({})", where, *as_int, labels.names.size(),
                   quoted_list(labels.names));
          ex.label = int32_t(*as_int);
        } else {
          std::string key = std::to_string(*as_int);
          auto it = std::find(labels.names.begin(), labels.names.end(), key);
          BR_CHECK(it != labels.names.end(), "{}: unknown label {} (expected one of {})", where, key,
                   quoted_list(labels.names));
          ex.label = int32_t(it - labels.names.begin());
        }
      }
    }
    out.push_back(std::move(ex));
  }
  return out;
}

std::vector<Example> load_task_file(const GlueTask& task, const std::string& path) {
  return load_examples(read_data_file(path), task_text_columns(task), task_label_scheme(task));
}

}  // namespace br
