#include "kernels/profile.h"

#include <cstring>

namespace br::profile {

std::atomic<bool> g_enabled{false};

namespace {

struct State {
  const char* phase = "step";
  std::vector<Row> rows;
  // Exclusive time: each open scope collects the inclusive time of the scopes closed inside it.
  std::vector<double> child_seconds;
};

State& state() {
  static State s;
  return s;
}

Row& row(const char* phase, const char* op) {
  for (Row& r : state().rows)
    if (std::strcmp(r.phase, phase) == 0 && std::strcmp(r.op, op) == 0) return r;
  state().rows.push_back({phase, op, 0.0, 0});
  return state().rows.back();
}

}  // namespace

void set_enabled(bool on) { g_enabled.store(on, std::memory_order_relaxed); }
void set_phase(const char* phase) { state().phase = phase; }
void reset() { state().rows.clear(); }
std::vector<Row> rows() { return state().rows; }

void Scope::begin(const char* op) {
  op_ = op;
  state().child_seconds.push_back(0.0);
  t0_ = std::chrono::steady_clock::now();
}

void Scope::end() {
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  State& s = state();
  const double children = s.child_seconds.back();
  s.child_seconds.pop_back();
  if (!s.child_seconds.empty()) s.child_seconds.back() += total;
  Row& r = row(s.phase, op_);
  r.seconds += total - children;
  r.calls += 1;
}

}  // namespace br::profile
