// run_glue.py in C++: data, tokenizer, model, the Trainer loop (logging, evaluation, checkpoints,
// best model, resume), evaluation and prediction, writing the files Hugging Face writes.
#pragma once
#include <string>

#include "train/args.h"

namespace br {

// How a run ended: stop_signal is 0 when it ran to the end, else the signal (SIGTERM, SIGINT,
// SIGUSR1; train/preempt.h) that stopped training after an optimizer step, with `checkpoint` the
// folder saved then (evaluation and prediction are skipped: the resumed run does them).
struct RunResult {
  int stop_signal = 0;
  std::string checkpoint;
};

// Runs what `run_glue.py` would run for these arguments (do_train / do_eval / do_predict).
// Throws br::Error with a message naming the file, line, flag or step on any failure; a
// checkpoint already written is never touched by a failure. While training runs, SIGTERM,
// SIGINT and SIGUSR1 stop it at the end of the current optimizer step, on every rank at the same
// step, and rank 0 saves checkpoint-N; a second signal exits at once (docs/DISTRIBUTED.md).
RunResult run_glue(const TrainingArgs& args);

}  // namespace br
