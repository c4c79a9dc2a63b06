// Preemption: SIGTERM, SIGINT and SIGUSR1 (what SLURM's --signal sends) ask a training run to stop
// at the end of its current optimizer step and save a checkpoint, instead of ending it at once.
// The handler only records the signal (async-signal-safe); the trainer polls it once per step.
// A further signal after the first, while the step finishes or the checkpoint is written, exits
// at once (_exit(128 + signal)): the atomic writer leaves the previous checkpoint intact. Under
// `bertrazor launch` (BERTRAZOR_LAUNCHER_PID is the parent) the launcher's forwarded signals and
// everyone else's are counted apart, so a scheduler that signals every process of the job (the
// ranks directly and the launcher, which passes it on) makes one request, not two.
#pragma once

namespace br {

// While alive, SIGTERM, SIGINT and SIGUSR1 are recorded instead of ending the process; the
// previous handlers come back when it is destroyed, unless a stop was requested: then the handler
// stays until the process exits, so the same request arriving late by its other path is ignored.
// One at a time per process.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The first stop signal received since construction, or 0.
  static int pending();
  // Records `sig` as the handler does (in-process tests, library users stopping a run).
  static void request(int sig);
};

// "SIGTERM", "SIGINT", "SIGUSR1", else "a signal".
const char* stop_signal_name(int sig);

// The exit status a run stopped by `sig` ends with: 0 for SIGUSR1 (a scheduler's planned stop),
// 128 + sig otherwise, as a shell reports a process the signal ended.
int stop_exit_status(int sig);

}  // namespace br
