// run_glue.py in C++: data, tokenizer, model, the Trainer loop (logging, evaluation, checkpoints,
// best model, resume), evaluation and prediction, writing the files Hugging Face writes.
#pragma once
#include <string>

#include "train/args.h"

namespace br {

// Runs what `run_glue.py` would run for these arguments (do_train / do_eval / do_predict).
// Throws br::Error with a message naming the file, line, flag or step on any failure; a
// checkpoint already written is never touched by a failure.
void run_glue(const TrainingArgs& args);

}  // namespace br
