// libFuzzer target for the original GLUE TSV reader (train/glue.h, parse_glue_tsv). The first byte
// picks the task (mod 9) and the split (/ 9 mod 3); the rest is the file. An input is rejected with
// a br::Error naming the file, or every row it gives is a well-formed example of that task.
#include <algorithm>
#include <cmath>

#include "fuzz.h"
#include "train/glue.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const br::GlueTask& task = br::glue_tasks()[in.mode % 9];
  const br::Split split = br::Split((in.mode / 9) % 3);
  const std::string path = "fuzz/" + task.name + "/train.tsv";
  const auto rows = fuzz::try_parse(path, [&] { return br::parse_glue_tsv(task, std::move(in.text), path, split); });
  if (!rows) return 0;
  int64_t last_idx = -1;
  for (const br::Example& ex : *rows) {
    fuzz::require(ex.idx > last_idx, "idx increases row by row");
    last_idx = ex.idx;
    fuzz::require(ex.text_b.has_value() == !task.key_b.empty(), "a pair task has text_b, a single one not");
    if (task.is_regression()) {
      fuzz::require(ex.label == -1, "a regression row has no class label");
      fuzz::require(std::isnan(ex.value) || std::isfinite(ex.value), "a regression target is finite");
    } else {
      fuzz::require(ex.label >= -1 && ex.label < task.num_labels(), "a class label is one of the task's");
      fuzz::require(std::isnan(ex.value), "a class row has no regression value");
    }
  }
  return 0;
}
