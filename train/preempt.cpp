#include "train/preempt.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace br {

namespace {

constexpr int kStopSignals[] = {SIGTERM, SIGINT, SIGUSR1};

// Lock-free atomics are safe to touch in a signal handler (C++17 [support.signal]).
std::atomic<int> g_pending{0};
std::atomic<int> g_from_launcher{0}, g_from_others{0};  // signals received, by sender
std::atomic<bool> g_installed{false};
bool g_lingering = false;  // our handler outlived a StopSignals that saw a stop (see the destructor)
pid_t g_launcher = 0;  // `bertrazor launch`, our parent, or 0
struct sigaction g_previous[3];
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free);

// Signals are counted apart by sender, the launcher or anyone else: a scheduler that signals
// every process of a job (SLURM) reaches a rank both directly and through the launcher, and
// that is one request. A second signal from the same side exits at once.
void on_stop_signal(int sig, siginfo_t* info, void*) {
  const bool from_launcher = g_launcher != 0 && info && info->si_pid == g_launcher;
  if ((from_launcher ? g_from_launcher : g_from_others).fetch_add(1) >= 1) ::_exit(128 + sig);
  int none = 0;
  g_pending.compare_exchange_strong(none, sig);
}

}  // namespace

StopSignals::StopSignals() {
  BR_CHECK(!g_installed.exchange(true), "StopSignals: the stop-signal handlers are already installed");
  g_pending = 0;
  g_from_launcher = 0;
  g_from_others = 0;
  // `bertrazor launch` names itself; an inherited value that is not our parent means nothing.
  const char* launcher = std::getenv("BERTRAZOR_LAUNCHER_PID");
  const long parent = launcher ? std::atol(launcher) : 0;
  g_launcher = parent > 0 && pid_t(parent) == ::getppid() ? pid_t(parent) : 0;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int s : kStopSignals) sigaddset(&sa.sa_mask, s);  // one handler runs at a time
  sa.sa_flags = SA_SIGINFO | SA_RESTART;  // a write or a collective's poll in progress goes on
  for (size_t i = 0; i < 3; ++i)
    ::sigaction(kStopSignals[i], &sa, g_lingering ? nullptr : &g_previous[i]);
  g_lingering = false;
}

StopSignals::~StopSignals() {
  // After a stop, the same request may still be on its way by the other path (a scheduler's
  // direct signal behind the launcher's forwarded one, or the reverse). With the previous
  // handlers back it would kill a rank that stopped cleanly, so ours stays until the process
  // ends, still counting by sender: the duplicate is ignored, a real second signal exits at once.
  if (g_pending.load() != 0) {
    g_lingering = true;
  } else {
    for (size_t i = 0; i < 3; ++i) ::sigaction(kStopSignals[i], &g_previous[i], nullptr);
  }
  g_installed = false;
}

int StopSignals::pending() { return g_pending.load(); }

void StopSignals::request(int sig) {
  int none = 0;
  g_pending.compare_exchange_strong(none, sig);
}

const char* stop_signal_name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
  }
  return "a signal";
}

int stop_exit_status(int sig) { return sig == SIGUSR1 ? 0 : 128 + sig; }

}  // namespace br
