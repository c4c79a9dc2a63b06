// `bertrazor memory --svg FILE`: the memory of real training steps as one self-contained SVG.
// Top panel: for each plan, a stacked bar per encoder layer (and one for the embeddings and head),
// one colour per saved site, with a checkpointed layer's recompute peak drawn as an outlined
// segment on its bar. Bottom panel: the step's peak per memory category (parameters, gradients,
// optimizer state, saved activations, transient activations, workspace) and the total peak, with
// the budget line when one is given.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "train/args.h"
#include "train/memory_report.h"

namespace br {

struct LabelledReport {
  std::string label;  // "given flags", "dense", "checkpoint+balanced", ...
  MemoryReport report;
};

std::string memory_svg(const std::vector<LabelledReport>& runs, const std::string& title,
                       std::optional<int64_t> budget_bytes = std::nullopt);

// The arguments of one --compare item: `a` with the plan replaced (dense, a preset, checkpoint,
// checkpoint+PRESET). Throws naming the item.
CommandArgs args_for_plan(const CommandArgs& a, const std::string& plan);

// What `memory --svg` does: `given` (the step of a's own flags) and one real step for each
// --compare item, drawn to *a.svg. Returns the file written.
std::string write_memory_svg(const CommandArgs& a, const MemoryReport& given);

}  // namespace br
