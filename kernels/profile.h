// A per-op time breakdown for bench_bert_step --profile: every public entry point of the kernels/
// dispatchers opens a BR_PROFILE scope. Off (the default) a scope costs one relaxed atomic load.
// On, each scope adds its exclusive wall time (its own time minus that of scopes opened inside
// it, so linear_forward's GEMM is counted under matmul) and one call to the row (phase, op) of
// one table. Scopes are meant for the thread that calls the dispatchers, not for OpenMP workers.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace br::profile {

extern std::atomic<bool> g_enabled;

inline bool enabled() { return g_enabled.load(std::memory_order_relaxed); }
void set_enabled(bool on);
// The phase the following scopes are counted under ("forward", "backward", ...); a string literal.
void set_phase(const char* phase);
void reset();

struct Row {
  const char* phase;
  const char* op;
  double seconds;
  int64_t calls;
};
// Rows in the order they were first seen.
std::vector<Row> rows();

class Scope {
 public:
  explicit Scope(const char* op) {
    if (enabled()) begin(op);
  }
  ~Scope() {
    if (op_) end();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  void begin(const char* op);
  void end();
  const char* op_ = nullptr;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace br::profile

#define BR_PROFILE_CAT2(a, b) a##b
#define BR_PROFILE_CAT(a, b) BR_PROFILE_CAT2(a, b)
#define BR_PROFILE(op) ::br::profile::Scope BR_PROFILE_CAT(br_profile_scope_, __LINE__)(op)
