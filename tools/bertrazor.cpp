// The bertrazor CLI: parses arguments, then calls library functions. No logic a library user needs.
#include <cstdio>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"

namespace {

int usage() {
  std::puts(
      "usage: bertrazor <command> [flags]\n"
      "commands:\n"
      "  info      what this build supports (CUDA, devices)\n");
  return 2;
}

int cmd_info() {
  std::printf("bertrazor 0.1.0\ncuda built: %s\ncuda devices: %d\n", br::cuda_built() ? "yes" : "no",
              br::cuda_device_count());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage();
  try {
    if (args[0] == "info") return cmd_info();
    std::fprintf(stderr, "bertrazor: unknown command '%s'\n", args[0].c_str());
    return usage();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bertrazor: error: %s\n", e.what());
    return 1;
  }
}
