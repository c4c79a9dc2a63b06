// Where a --model_name_or_path points, resolved offline (no network access, ever).
#pragma once
#include <string>
#include <vector>

namespace br {

// A folder holding config.json is returned as given (a leading ~/ expanded). Otherwise the name is
// read as a hub id ("bert-base-uncased", "sentence-transformers/all-MiniLM-L6-v2") and looked up,
// in this order, in
//   1. the Hugging Face hub caches: $HF_HUB_CACHE, $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub,
//      ~/.cache/huggingface/hub, each in the layout models--{org}--{name}/snapshots/{revision}/
//      with refs/main naming the revision (a lone snapshot is used when refs/main is absent);
//   2. the project's cache, $BERTRAZOR_CACHE/models/ (default ~/.cache/bertrazor/models/), as
//      <org>/<name>/ and then <name>/ (tools/get_model.sh fills it).
// The first folder holding config.json wins; if none does, the error lists every place tried.
std::string resolve_model_path(const std::string& name_or_path);

// The candidate folders of step 1 and 2, in order (for messages and tests).
std::vector<std::string> model_search_roots();

}  // namespace br
