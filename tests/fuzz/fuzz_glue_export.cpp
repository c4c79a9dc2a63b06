// libFuzzer target for the --train_file/--validation_file readers (train/glue.h, parse_data_file):
// the quoted TSV that datasets exports (HF layout), CSV and JSON lines. The first byte picks the
// extension (mod 4: .tsv .csv .jsonl .json) and how labels are read (/ 4 mod 2: run_glue without
// --task_name, i.e. inferred from the file; or as RTE's export). An input is rejected with a
// br::Error naming the file, or the table is rectangular and every example well-formed.
#include <cmath>

#include "fuzz.h"
#include "train/glue.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  static const char* const kExt[] = {".tsv", ".csv", ".jsonl", ".json"};
  const std::string path = std::string("fuzz/train") + kExt[in.mode % 4];
  const bool as_task = (in.mode / 4) % 2 == 1;
  const std::optional<br::DataTable> parsed =
      fuzz::try_parse(path, [&] { return br::parse_data_file(std::move(in.text), path); });
  if (!parsed) return 0;
  const br::DataTable& t = *parsed;
  fuzz::require(!t.columns.empty(), "a table has columns");
  fuzz::require(t.rows.size() == t.lines.size(), "a source line per row");
  int64_t last_line = 0;
  for (size_t r = 0; r < t.rows.size(); ++r) {
    fuzz::require(t.rows[r].size() == t.columns.size(), "rows are as wide as the header");
    fuzz::require(t.lines[r] > last_line, "rows start on increasing lines");
    last_line = t.lines[r];
  }
  const br::GlueTask& rte = br::glue_task("rte");
  br::LabelScheme labels;
  br::TextColumns cols;
  const auto ex = fuzz::try_parse(path, [&] {
    labels = as_task ? br::task_label_scheme(rte) : br::infer_label_scheme(t);
    cols = as_task ? br::task_text_columns(rte) : br::choose_text_columns(t);
    return br::load_examples(t, cols, labels);
  });
  if (!ex) return 0;
  fuzz::require(ex->size() == t.rows.size(), "an example per row");
  for (const br::Example& e : *ex) {
    fuzz::require(e.text_b.has_value() == !cols.b.empty(), "text_b exactly when a second column is used");
    if (labels.is_regression())
      fuzz::require(e.label == -1 && (std::isnan(e.value) || std::isfinite(e.value)), "regression targets are finite");
    else
      fuzz::require(e.label >= -1 && e.label < int32_t(labels.names.size()) && std::isnan(e.value),
                    "class labels index the label list");
  }
  return 0;
}
