// `bertrazor launch`: a torchrun-style launcher. Spawns nproc_per_node copies of the current
// executable with the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// GROUP_RANK, ROLE_RANK, ROLE_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, TORCHELASTIC_*, and
// OMP_NUM_THREADS=1 unless set), which make_communicator() turns into the TCP transport, plus
// BERTRAZOR_LAUNCHER_PID (train/preempt.h tells forwarded stop signals from direct ones). Spec §7.
#pragma once
#include <string>
#include <vector>

namespace br {

// `bertrazor launch --nproc_per_node N [--nnodes M --node_rank R --master_addr A --master_port P]
// [--standalone] <command> ...`, parsed by parse_command_args(Command::launch, ...) (train/args.h).
struct LaunchOptions {
  int nproc_per_node = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::vector<std::string> command;  // arguments after the options, passed to each copy
};

// Runs `exe` with options.command once per local rank, each in a process group of its own, and
// waits. SIGTERM, SIGINT and SIGUSR1 sent to the launcher are passed on to every rank (which stop
// training cleanly, train/preempt.h). When one fails the others get SIGTERM (SIGKILL after
// 5 s); one that exits 128 + SIGTERM or SIGINT itself stopped cleanly, and the others, stopping at
// the same step, are left to finish. Returns the first non-zero exit status (128 + signal for a killed one), else 0.
int launch(const LaunchOptions& options, const std::string& exe = "/proc/self/exe");

}  // namespace br
