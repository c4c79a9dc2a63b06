// libFuzzer target for trainer_state.json as a resume reads it (train/checkpoint_io.h,
// TrainerState::parse, the parser of TrainerState::load). An input is rejected with a br::Error
// naming the file, or the state it gives writes back to a file that reads back to the same text.
#include "fuzz.h"
#include "train/checkpoint_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = "fuzz/checkpoint-1/trainer_state.json";
  const std::optional<br::TrainerState> parsed =
      fuzz::try_parse(path, [&] { return br::TrainerState::parse(fuzz::text(data, size), path); });
  if (!parsed) return 0;
  const br::TrainerState& s = *parsed;
  std::string text;
  try {
    text = s.to_file_text();
  } catch (const br::Error&) {
    return 0;  // a string that is not valid UTF-8 cannot be written as JSON
  }
  br::TrainerState back = br::TrainerState::parse(text, path);
  fuzz::require(back.to_file_text() == text, "to_file_text -> parse -> to_file_text is the identity", text);
  fuzz::require(back.global_step == s.global_step && back.log_history.size() == s.log_history.size(),
                "the round trip keeps the step and the history");
  return 0;
}
