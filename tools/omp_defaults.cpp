// bertrazor's OpenMP default, applied before the OpenMP runtime starts.
//
// libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT once, in its constructor, before main().
// Unset, an idle worker spins for 300000 iterations after each parallel region. On the virtual
// machines our users train on (2 vCPUs under KVM in our measurements) that spinning made a
// training step up to 3.5x slower than OMP_WAIT_POLICY=PASSIVE (docs/RESULTS.md, "OpenMP wait
// policy"). So when the user has set neither variable, the program starts with
// OMP_WAIT_POLICY=PASSIVE. A value the user set is kept; BERTRAZOR_OMP_DEFAULTS=off keeps
// libgomp's own default.
//
// The environment cannot simply be changed before libgomp reads it: the only code that runs
// before libgomp's constructor is the executable's .preinit_array, and libc's own initialization,
// which comes after it, resets `environ` to the array the kernel passed. So the preinit function
// executes the program again (same pid, same arguments) with the variable added: one exec, a few
// milliseconds, before any library has started. Should the exec fail (no /proc), the program goes
// on with libgomp's default.
//
// A .preinit_array exists in executables only, so this file is linked into ours (the CLI, the
// benchmarks, the tests) as the object library bertrazor::omp_defaults, not into libbertrazor.a;
// a program that embeds the library links it too, or sets the variable itself.
#include <unistd.h>

#include <cstring>

namespace {

bool starts_with(const char* s, const char* prefix) {
  return std::strncmp(s, prefix, std::strlen(prefix)) == 0;
}

// Called with the kernel's argv and envp; libc is not initialized yet, so only plain string
// functions and execve.
void bertrazor_omp_defaults(int, char** argv, char** envp) {
  constexpr size_t kMaxEnv = 4096;
  static char* env[kMaxEnv + 2];
  size_t n = 0;
  for (; envp && envp[n]; ++n) {
    const char* e = envp[n];
    if (starts_with(e, "OMP_WAIT_POLICY=") || starts_with(e, "GOMP_SPINCOUNT=") ||
        starts_with(e, "BERTRAZOR_OMP_DEFAULTS=off"))
      return;  // the user's choice
    if (starts_with(e, "LD_PRELOAD=") && std::strstr(e, "vgpreload")) return;  // valgrind
    if (n == kMaxEnv) return;
    env[n] = envp[n];
  }
  env[n] = const_cast<char*>("OMP_WAIT_POLICY=PASSIVE");
  env[n + 1] = nullptr;
  ::execve("/proc/self/exe", argv, env);
}

}  // namespace

__attribute__((section(".preinit_array"), used)) static void (*const bertrazor_preinit)(int, char**, char**) =
    bertrazor_omp_defaults;
