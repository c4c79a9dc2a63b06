// libFuzzer target for config.json (models/config.h, BertConfig::from_json_text). An input is
// rejected with a br::Error naming the file, or it parses into a config that validates and
// survives to_json -> from_json unchanged.
#include "fuzz.h"
#include "models/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string origin = "fuzz/config.json";
  // A few bytes of "num_labels" make up to 2^20 LABEL_i names (models/config.cpp's cap), linear
  // work that is no parser bug: under ASan {"num_labels": 388004} took 14 s, past libFuzzer's
  // -timeout, and such inputs kept the run near 600 inputs/s. Counts above 4096 are skipped (those
  // above the cap still reach the parser, which must reject them).
  const nlohmann::json peek = nlohmann::json::parse(fuzz::text(data, size), nullptr, false);
  if (peek.is_object() && peek.contains("num_labels") && peek["num_labels"].is_number_integer() &&
      peek["num_labels"].get<int64_t>() > 4096 && peek["num_labels"].get<int64_t>() <= (int64_t(1) << 20))
    return 0;
  const std::optional<br::BertConfig> parsed =
      fuzz::try_parse(origin, [&] { return br::BertConfig::from_json_text(fuzz::text(data, size), origin); });
  if (!parsed) return 0;
  const br::BertConfig& c = *parsed;
  c.validate(origin);  // from_json validated it: throwing here escapes and aborts
  fuzz::require(c.num_labels() >= 1 && c.head_dim() >= 1, "labels and head dim are positive");
  const nlohmann::json j = c.to_json();
  br::BertConfig back = br::BertConfig::from_json(j, origin);
  fuzz::require(back.to_json() == j, "to_json -> from_json -> to_json is the identity", j.dump());
  return 0;
}
