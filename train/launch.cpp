#include "train/launch.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/device.h"
#include "core/error.h"

extern char** environ;

namespace br {

namespace {

int parse_int(const std::string& opt, const std::string& v, int lo, int hi) {
  char* end = nullptr;
  long x = std::strtol(v.c_str(), &end, 10);
  BR_CHECK(!v.empty() && end && *end == '\0' && x >= lo && x <= hi,
           "bertrazor launch: {} expects an integer in [{}, {}], got '{}'", opt, lo, hi, v);
  return int(x);
}

std::string normalise(std::string opt) {
  for (char& c : opt)
    if (c == '-') c = '_';
  return opt;
}

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

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

LaunchOptions parse_launch_args(const std::vector<std::string>& argv) {
  LaunchOptions o;
  bool master_addr_given = false;
  size_t i = 0;
  for (; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.rfind("--", 0) != 0) break;
    std::string opt = a, value;
    size_t eq = a.find('=');
    if (eq != std::string::npos) {
      opt = a.substr(0, eq);
      value = a.substr(eq + 1);
    }
    const std::string key = normalise(opt.substr(2));
    if (key == "standalone") continue;
    if (eq == std::string::npos) {
      BR_CHECK(i + 1 < argv.size(), "bertrazor launch: {} needs a value", opt);
      value = argv[++i];
    }
    if (key == "nproc_per_node") {
      const int cpus = int(std::thread::hardware_concurrency());
      if (value == "gpu") o.nproc_per_node = cuda_device_count();
      else if (value == "cpu") o.nproc_per_node = cpus;
      else if (value == "auto") o.nproc_per_node = cuda_device_count() > 0 ? cuda_device_count() : cpus;
      else o.nproc_per_node = parse_int(opt, value, 1, 1024);
      BR_CHECK(o.nproc_per_node >= 1, "bertrazor launch: --nproc_per_node {} found no device",
               value);
    } else if (key == "nnodes") {
      o.nnodes = parse_int(opt, value, 1, 65536);
    } else if (key == "node_rank") {
      o.node_rank = parse_int(opt, value, 0, 65535);
    } else if (key == "master_addr") {
      o.master_addr = value;
      master_addr_given = true;
    } else if (key == "master_port") {
      o.master_port = parse_int(opt, value, 1, 65535);
    } else {
      fail("bertrazor launch: unknown option {} (expected --nproc_per_node, --nnodes, --node_rank, "
           "--master_addr, --master_port, --standalone)", opt);
    }
  }
  o.command.assign(argv.begin() + long(i), argv.end());
  BR_CHECK(!o.command.empty(), "bertrazor launch: no command given (e.g. `bertrazor launch "
           "--nproc_per_node 2 train ...`)");
  BR_CHECK(o.node_rank < o.nnodes, "bertrazor launch: --node_rank {} is not below --nnodes {}",
           o.node_rank, o.nnodes);
  BR_CHECK(o.nnodes == 1 || master_addr_given,
           "bertrazor launch: --nnodes {} needs --master_addr (the address of node 0)", o.nnodes);
  return o;
}

int launch(const LaunchOptions& o, const std::string& exe) {
  BR_CHECK(!o.command.empty(), "launch: empty command");
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
    for (pid_t& p : pids) {
      if (p <= 0) continue;
      int status = 0;
      pid_t r = ::waitpid(p, &status, WNOHANG);
      if (r == 0) continue;
      BR_CHECK(r == p, "bertrazor launch: waitpid({}) failed: {}", p, std::strerror(errno));
      p = -1;
      --running;
      int code = exit_code(status);
      if (code != 0 && first_failure == 0) {
        first_failure = code;
        if (running > 0) {
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

int launch_main(const std::vector<std::string>& argv) { return launch(parse_launch_args(argv)); }

}  // namespace br
