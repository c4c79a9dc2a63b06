// tools/omp_defaults.cpp: the CLI starts libgomp with OMP_WAIT_POLICY=PASSIVE unless the user
// chose a wait policy or a spin count. libgomp's OMP_DISPLAY_ENV=VERBOSE report says what it read.
#include <catch2/catch.hpp>

#include <cstdio>
#include <string>

namespace {

// What libgomp reports at start-up for the CLI run under `env_prefix`.
std::string omp_report(const std::string& env_prefix) {
  const std::string cmd = "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT " + env_prefix +
                          " OMP_DISPLAY_ENV=VERBOSE '" BERTRAZOR_CLI "' info 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  REQUIRE(::pclose(p) == 0);
  return out;
}

}  // namespace

TEST_CASE("the CLI starts OpenMP passive unless the user chose a wait policy", "[train][cli]") {
  using Catch::Matchers::Contains;
  const std::string unset = omp_report("");
  CHECK_THAT(unset, Contains("OMP_WAIT_POLICY = 'PASSIVE'"));
  CHECK_THAT(unset, Contains("GOMP_SPINCOUNT = '0'"));  // libgomp's own default spins 300000 times
  const std::string active = omp_report("OMP_WAIT_POLICY=ACTIVE");
  CHECK_THAT(active, Contains("OMP_WAIT_POLICY = 'ACTIVE'"));
  CHECK_THAT(omp_report("GOMP_SPINCOUNT=1000"), Contains("GOMP_SPINCOUNT = '1000'"));
  CHECK_THAT(omp_report("BERTRAZOR_OMP_DEFAULTS=off"), Contains("GOMP_SPINCOUNT = '300000'"));
}
