// libFuzzer target for rng_state.json as a resume reads it (train/checkpoint_io.h, parse_rng_state,
// the parser of load_checkpoint). An input is rejected with a br::Error naming the file, or it gives
// a non-negative resume point that rng_state_text writes back to a file reading back the same point.
#include "fuzz.h"
#include "train/checkpoint_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = "fuzz/checkpoint-1/rng_state.json";
  const std::optional<br::ResumePoint> parsed =
      fuzz::try_parse(path, [&] { return br::parse_rng_state(fuzz::text(data, size), path); });
  if (!parsed) return 0;
  const br::ResumePoint& r = *parsed;
  fuzz::require(r.epoch >= 0 && r.micro_batches_in_epoch >= 0, "a resume point is non-negative");
  const std::string text = br::rng_state_text(br::TrainingArgs{}, r, 7);
  const br::ResumePoint back = br::parse_rng_state(text, path);
  fuzz::require(back.epoch == r.epoch && back.micro_batches_in_epoch == r.micro_batches_in_epoch,
                "rng_state_text -> parse_rng_state keeps the resume point", text);
  return 0;
}
