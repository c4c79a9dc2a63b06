// GLUE tasks and their data: the task table (text columns, label lists in datasets' ClassLabel
// order, metrics), loaders for the original GLUE TSV files under --data_dir, and loaders for
// --train_file/--validation_file/--test_file in CSV, TSV (quoted, as datasets exports) or JSON
// lines. Spec: reference/hf-run-glue-spec.md §1b and §3.
#pragma once
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace br {

enum class Split { train, validation, test };

// One row. Classification: label is the class id. Regression (stsb): value is the float32 target.
// Unlabeled rows (test splits, label -1 in exports) have label -1 and value NaN.
struct Example {
  std::string text_a;
  std::optional<std::string> text_b;
  int32_t label = -1;
  float value = NAN;
  int64_t idx = 0;
  bool labeled() const { return label >= 0 || !std::isnan(value); }
};

struct GlueTask {
  std::string name;                      // "rte"
  std::string key_a, key_b;              // datasets feature names; key_b empty: single sentence
  std::vector<std::string> label_names;  // ClassLabel names in id order; empty: regression
  std::vector<std::string> metric_names; // run_glue's keys in order, e.g. accuracy, f1
  bool is_regression() const { return label_names.empty(); }
  int num_labels() const { return is_regression() ? 1 : int(label_names.size()); }
};

// cola sst2 mrpc qqp stsb mnli qnli rte wnli: the one list of GLUE task names.
const std::vector<GlueTask>& glue_tasks();
const std::vector<std::string>& glue_task_names();  // the names of glue_tasks(), in that order
// Case-insensitive lookup (run_glue lower-cases --task_name): nullptr for an unknown name, or
// (glue_task) a throw listing the valid names.
const GlueTask* find_glue_task(std::string_view name);
const GlueTask& glue_task(std::string_view name);

// The original GLUE files of a split: one per evaluation set, e.g. mnli validation gives
// {"validation_matched", "dev_matched.tsv"} and {"validation_mismatched", "dev_mismatched.tsv"}.
struct GlueFile {
  std::string split_name;
  std::string file_name;
};
std::vector<GlueFile> glue_files(const GlueTask& task, Split split);

// An original GLUE TSV (tab-separated, no quoting, "\n", "\r\n" or "\r" line ends, a leading BOM
// ignored), read as datasets' glue.py does: columns by header name (CoLA train/dev: no header,
// label [1], sentence [3]); string labels through the ClassLabel names, numeric ones as ids;
// a file without the label column (test) gives unlabeled rows; idx = data-row number, blank lines
// skipped. QQP rows with missing fields or an empty label are dropped (their idx is skipped) as
// datasets does; in every other task they are errors naming path:line.
std::vector<Example> load_glue_tsv(const GlueTask& task, const std::string& path, Split split);
// The same from the file's bytes; `path` names it in errors (the fuzz target's entry).
std::vector<Example> parse_glue_tsv(const GlueTask& task, std::string text, const std::string& path,
                                    Split split);
// load_glue_tsv over glue_files(task, split) under data_dir; one example list per file.
std::vector<std::vector<Example>> load_glue_split(const GlueTask& task, const std::string& data_dir,
                                                  Split split);

// A --train_file/--validation_file/--test_file table. .csv (comma) and .tsv (tab): a header row,
// fields optionally quoted with '"' ("" inside quotes is one quote; quoted fields may hold line
// breaks). .json/.jsonl: one object per line (or a single array of objects); columns are the keys
// in first-seen order.
struct DataTable {
  enum class Kind { text, string, integer, number, null };  // text: a CSV field, type not yet known
  struct Cell {
    std::string text;  // the field, or the JSON value printed
    Kind kind = Kind::text;
  };
  std::string path;
  std::vector<std::string> columns;
  std::vector<std::vector<Cell>> rows;  // rows[i].size() == columns.size()
  std::vector<int64_t> lines;           // 1-based source line where each row starts
  int column(std::string_view name) const;  // -1 when absent
};
DataTable read_data_file(const std::string& path);
// The same from the file's bytes; `path` picks the format by its extension and names it in errors.
DataTable parse_data_file(std::string text, const std::string& path);

// Which columns hold the texts: a task's own feature names, or run_glue's rule for other files
// (sentence1/sentence2 when both exist, else the first two non-label columns, else the first).
struct TextColumns {
  std::string a, b;  // b empty: single sentence
};
TextColumns task_text_columns(const GlueTask& task);
TextColumns choose_text_columns(const DataTable& train);

// How labels map to ids. A task's scheme takes integer labels as ids and strings through its
// names; a scheme inferred from a train file (run_glue without --task_name) is the sorted unique
// labels (numeric order for integers), or regression when the label column holds non-integral
// numbers. -1 is "unlabeled" in both.
struct LabelScheme {
  std::vector<std::string> names;  // empty: regression
  bool ids_as_stored = false;
  bool is_regression() const { return names.empty(); }
};
LabelScheme task_label_scheme(const GlueTask& task);
LabelScheme infer_label_scheme(const DataTable& train);

// Rows to examples. A table without a "label" column is unlabeled; an "idx" column gives idx,
// otherwise the row number. Throws naming path:line for an unknown label, a bad number or a
// missing column.
std::vector<Example> load_examples(const DataTable& table, const TextColumns& columns,
                                   const LabelScheme& labels);
// read_data_file + the task's columns and labels (an exported GLUE split given with --task_name).
std::vector<Example> load_task_file(const GlueTask& task, const std::string& path);

}  // namespace br
