#include "train/launch.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/error.h"

extern char** environ;

namespace br {

namespace {

// The environment of local rank `local`: ours minus variables that would select another transport,
// plus the torchrun variables.
std::vector<std::string> child_env(const LaunchOptions& o, int local) {
  const int world = o.nnodes * o.nproc_per_node;
  const int rank = o.node_rank * o.nproc_per_node + local;
  std::vector<std::pair<std::string, std::string>> set = {
      {"RANK", std::to_string(rank)},
      {"WORLD_SIZE", std::to_string(world)},
      {"LOCAL_RANK", std::to_string(local)},
      {"LOCAL_WORLD_SIZE", std::to_string(o.nproc_per_node)},
      {"GROUP_RANK", std::to_string(o.node_rank)},
      {"ROLE_RANK", std::to_string(rank)},
      {"ROLE_WORLD_SIZE", std::to_string(world)},
      {"MASTER_ADDR", o.master_addr},
      {"MASTER_PORT", std::to_string(o.master_port)},
      {"TORCHELASTIC_RESTART_COUNT", "0"},
      {"TORCHELASTIC_MAX_RESTARTS", "0"},
      {"TORCHELASTIC_RUN_ID", "none"},
      {"BERTRAZOR_LAUNCHER_PID", std::to_string(::getpid())},  // train/preempt.h: who forwards
  };
  const char* omp = std::getenv("OMP_NUM_THREADS");
  if (o.nproc_per_node > 1 && !(omp && *omp)) set.emplace_back("OMP_NUM_THREADS", "1");
  const char* drop[] = {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
                        "PMI_SIZE", "PMI_RANK", "PMIX_RANK"};
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    std::string key = kv.substr(0, kv.find('='));
    bool skip = false;
    for (const char* d : drop) skip |= key == d;
    for (const auto& [k, v] : set) skip |= key == k;
    if (!skip) env.push_back(kv);
  }
  for (const auto& [k, v] : set) env.push_back(k + "=" + v);
  return env;
}

// Stop signals the launcher got and has not forwarded yet (a bit per kForwarded entry).
constexpr int kForwarded[] = {SIGTERM, SIGINT, SIGUSR1};
std::atomic<unsigned> g_to_forward{0};
static_assert(std::atomic<unsigned>::is_always_lock_free);

void on_launcher_signal(int sig) {
  for (unsigned i = 0; i < 3; ++i)
    if (kForwarded[i] == sig) g_to_forward.fetch_or(1u << i);
}

// While alive, SIGTERM, SIGINT and SIGUSR1 are queued for the ranks instead of ending the
// launcher, which would leave them running unsupervised.
struct ForwardSignals {
  struct sigaction previous[3];
  ForwardSignals() {
    g_to_forward = 0;
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_launcher_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int i = 0; i < 3; ++i) ::sigaction(kForwarded[i], &sa, &previous[i]);
  }
  ~ForwardSignals() {
    for (int i = 0; i < 3; ++i) ::sigaction(kForwarded[i], &previous[i], nullptr);
  }
};

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

int launch(const LaunchOptions& o, const std::string& exe) {
  BR_CHECK(!o.command.empty(), "launch: empty command");
  ForwardSignals forward;
  std::vector<pid_t> pids;
  auto kill_all = [&](int sig) {
    for (pid_t p : pids)
      if (p > 0) ::kill(p, sig);
  };
  for (int local = 0; local < o.nproc_per_node; ++local) {
    std::vector<std::string> env = child_env(o, local);
    std::vector<std::string> args = {exe};
    args.insert(args.end(), o.command.begin(), o.command.end());
    std::vector<char*> argp, envp;
    for (std::string& a : args) argp.push_back(a.data());
    argp.push_back(nullptr);
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
      // A process group of its own: a terminal's Ctrl-C reaches the launcher only, which passes
      // it on once, so a rank never sees one key press as two signals (the second exits at once).
      ::setpgid(0, 0);
      ::execve(exe.c_str(), argp.data(), envp.data());
      std::fprintf(stderr, "bertrazor launch: cannot execute %s: %s\n", exe.c_str(),
                   std::strerror(errno));
      ::_exit(127);
    }
    if (pid < 0) {
      int err = errno;
      kill_all(SIGKILL);
      for (pid_t p : pids) ::waitpid(p, nullptr, 0);
      fail("bertrazor launch: fork failed for local rank {}: {}", local, std::strerror(err));
    }
    pids.push_back(pid);
  }
  int first_failure = 0;
  size_t running = pids.size();
  std::chrono::steady_clock::time_point kill_at{};
  bool terminating = false;
  while (running > 0) {
    if (const unsigned got = g_to_forward.exchange(0))
      for (unsigned i = 0; i < 3; ++i)
        if (got & (1u << i)) kill_all(kForwarded[i]);
    for (pid_t& p : pids) {
      if (p <= 0) continue;
      int status = 0;
      pid_t r = ::waitpid(p, &status, WNOHANG);
      if (r == 0) continue;
      BR_CHECK(r == p, "bertrazor launch: waitpid({}) failed: {}", p, std::strerror(errno));
      p = -1;
      --running;
      int code = exit_code(status);
      // A rank that stopped cleanly on SIGTERM or SIGINT exits 128 + signal itself; the others
      // stop at the same step (rank 0 may still be saving), so they are left to finish.
      const bool clean_stop = WIFEXITED(status) && (code == 128 + SIGTERM || code == 128 + SIGINT);
      if (code != 0 && first_failure == 0) {
        first_failure = code;
        if (running > 0 && !clean_stop) {
          std::fprintf(stderr,
                       "bertrazor launch: a rank exited with status %d; stopping the others\n",
                       code);
          kill_all(SIGTERM);
          terminating = true;
          kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        }
      }
    }
    if (terminating && std::chrono::steady_clock::now() > kill_at) {
      kill_all(SIGKILL);
      terminating = false;
    }
    if (running > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return first_failure;
}

}  // namespace br
