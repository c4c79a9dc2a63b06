// libFuzzer target for config.json (models/config.h, BertConfig::from_json_text). An input is
// rejected with a br::Error naming the file, or it parses into a config that validates and (up to
// 4096 labels) survives to_json -> from_json unchanged.
#include "fuzz.h"
#include "models/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string origin = "fuzz/config.json";
  const std::optional<br::BertConfig> parsed =
      fuzz::try_parse(origin, [&] { return br::BertConfig::from_json_text(fuzz::text(data, size), origin); });
  if (!parsed) return 0;
  const br::BertConfig& c = *parsed;
  c.validate(origin);  // from_json validated it: throwing here escapes and aborts
  fuzz::require(c.num_labels() >= 1 && c.head_dim() >= 1, "labels and head dim are positive");
  // Labels cost linear time (models/config.cpp caps them at 2^20): under ASan one round trip of
  // 388004 LABEL_i names took 14 s, past libFuzzer's -timeout, with nothing wrong.
  if (c.num_labels() > 4096) return 0;
  const nlohmann::json j = c.to_json();
  br::BertConfig back = br::BertConfig::from_json(j, origin);
  fuzz::require(back.to_json() == j, "to_json -> from_json -> to_json is the identity", j.dump());
  return 0;
}
