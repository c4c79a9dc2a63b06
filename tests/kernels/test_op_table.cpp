// The walks over the op table (op_table.h): central differences in double, the CPU in f32 and
// CUDA in every listed precision against the CPU reference, coverage of kernels/*.h; then checks
// that the walks fail when an op is wrong, so the CUDA walk, skipped without a GPU, runs code that
// is known to catch a bad result. BERTRAZOR_OP=<entry> limits the walks to one entry, and
// BERTRAZOR_TEST_SEED=<n> replays the seed a failure printed.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include "inputs.h"
#include "kernels/activation.h"
#include "kernels/bias.h"
#include "kernels/grad_norm.h"
#include "op_table.h"

using namespace br;
using namespace br::test;

namespace {

bool selected(const OpCase& c) {
  const char* only = std::getenv("BERTRAZOR_OP");
  return only == nullptr || c.name == only;
}

void report(const std::string& what, const std::vector<std::string>& failures) {
  for (const std::string& f : failures) FAIL_CHECK(what << ": " << f);
}

// The CPU runs an entry's exact precisions (their reference is the CPU in the same dtypes, so it
// has them) and those in f32 and f64; bf16 compute and TF32 are CUDA's alone.
bool on_cpu(const Precision& p) {
  auto wide = [](DType t) { return t == DType::f32 || t == DType::f64; };
  return p.exact || (!p.tf32 && wide(p.act) && wide(p.param) && wide(p.grad));
}

// Functions of kernels/*.h that are not ops, with where they are tested.
const std::map<std::string, std::string> kNotOps = {
    {"python_double", "a host scalar of adamw_step (test_adamw.cpp, through the adamw entry)"},
    {"adamw_scalars", "the host scalars of adamw_step (test_adamw.cpp, through the adamw entry)"},
    {"backrazor_keep_count", "the keep rule with the spec's numbers (test_sparse_pack.cpp)"},
    {"set_cpu_bf16_matmul", "matmul's CPU bf16 mode (test_gemm.cpp [bf16]; f64 checks never round)"},
    {"cpu_bf16_matmul", "matmul's CPU bf16 mode (test_gemm.cpp [bf16])"},
    {"set_cpu_bf16_matmul_fallback", "that mode's sgemm fallback (test_gemm.cpp [bf16])"},
    {"cpu_bf16_matmul_native", "whether that mode has a native kernel here (test_gemm.cpp [bf16])"},
};

}  // namespace

TEST_CASE("every op's backward matches central differences in double", "[kernels][op_table]") {
  int walked = 0;
  for (const OpCase& c : op_table()) {
    if (!c.has_backward || !selected(c)) continue;
    for (const Dims& d : c.sizes) {
      const uint64_t seed = fresh_seed();
      report(c.name + " " + dims_str(c, d) + " seed " + std::to_string(seed),
             check_case_gradients(c, d, seed));
      ++walked;
    }
  }
  CHECK(walked > 0);
}

TEST_CASE("every op on the CPU in each precision it has matches the reference",
          "[kernels][op_table]") {
  int walked = 0;
  for (const OpCase& c : op_table()) {
    if (!selected(c)) continue;
    CHECK(on_cpu(c.precisions.at(0)));
    for (const Precision& p : c.precisions) {
      if (!on_cpu(p)) continue;
      for (const Dims& d : c.sizes) {
        const uint64_t seed = fresh_seed();
        report(c.name + " " + dims_str(c, d) + " " + p.str() + " on the CPU, seed " +
                   std::to_string(seed),
               compare_case(c, d, p, Device::cpu, seed));
        ++walked;
      }
    }
  }
  CHECK(walked > 0);
}

TEST_CASE("every op on CUDA matches the CPU reference in each precision",
          "[kernels][op_table][cuda]") {
  if (skip_without_cuda()) return;
  for (const OpCase& c : op_table()) {
    if (!selected(c)) continue;
    for (const Precision& p : c.precisions)
      for (const Dims& d : c.device_sizes.empty() ? c.sizes : c.device_sizes) {
        const uint64_t seed = fresh_seed();
        report(c.name + " " + dims_str(c, d) + " " + p.str() + " on CUDA, seed " +
                   std::to_string(seed),
               compare_case(c, d, p, Device::cuda, seed));
      }
  }
}

TEST_CASE("every function declared in kernels/*.h has an op table entry", "[kernels][op_table]") {
  const std::map<std::string, std::string> declared =
      declared_functions(std::string(BERTRAZOR_SOURCE_DIR) + "/kernels");
  // The scan sees the headers: a broken one would make every check below pass.
  REQUIRE(declared.count("gelu_forward") == 1);
  REQUIRE(declared.count("flash_attention_backward") == 1);
  REQUIRE(declared.size() >= 40);
  CHECK(declared.count("bytes") == 0);  // SparsePack::bytes is a member, not an op

  std::set<std::string> covered, names;
  for (const OpCase& c : op_table()) {
    INFO("entry " << c.name);
    CHECK(names.insert(c.name).second);
    CHECK(!c.covers.empty());
    CHECK(!c.sizes.empty());
    CHECK(!c.precisions.empty());
    CHECK(c.run);
    for (const Dims& d : c.sizes) CHECK(dims_str(c, d).find('?') == std::string::npos);
    for (const Dims& d : c.device_sizes) CHECK(dims_str(c, d).find('?') == std::string::npos);
    for (const std::string& f : c.covers) {
      covered.insert(f);
      if (!declared.count(f))
        FAIL_CHECK(c.name << " covers " << f << ", which kernels/*.h does not declare");
    }
  }
  for (const auto& [f, header] : declared)
    if (!covered.count(f) && !kNotOps.count(f))
      FAIL_CHECK("kernels/" << header << " declares " << f
                            << " but no entry of op_cases.cpp covers it");
}

// ---- the walks fail when they should ----

TEST_CASE("the coverage scan finds a new op and ignores backend namespaces", "[kernels][op_table]") {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("op_table_scan_" + std::to_string(fresh_seed()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "new_op.h") << "// new_op(x): a comment, not a declaration\n"
                                     "namespace br {\n"
                                     "void new_op_forward(const Tensor& out, const Tensor& inp);\n"
                                     "inline int64_t new_op_bytes(int64_t n) { return n; }\n"
                                     "struct NewOp {\n  int64_t bytes() const;\n};\n"
                                     "namespace cuda {\nvoid new_op_cuda(int n);\n"
                                     "}  // namespace cuda\n"
                                     "namespace {\nvoid new_op_helper();\n}  // namespace\n"
                                     "Tensor new_op(const Tensor& inp);\n"
                                     "}  // namespace br\n"
                                     "namespace br::cpu {\nvoid new_op_forward_cpu(int n);\n"
                                     "}  // namespace br::cpu\n";
  std::ofstream(dir / "notes.txt") << "namespace br {\nvoid not_a_header();\n}\n";
  const std::map<std::string, std::string> found = declared_functions(dir.string());
  std::filesystem::remove_all(dir);
  CHECK(found == std::map<std::string, std::string>{{"new_op_forward", "new_op.h"},
                                                    {"new_op_bytes", "new_op.h"},
                                                    {"new_op", "new_op.h"}});
}

namespace {

// tanh with a hook: `change(run index, output)` may spoil the output of one run.
OpCase spoiled_tanh(std::function<void(int, const Tensor&)> change) {
  OpCase c;
  c.name = "spoiled tanh";
  c.covers = {"tanh_forward"};
  c.dims = "shape";
  c.sizes = {{7, 33}};
  c.precisions = {Precision{}};
  auto runs = std::make_shared<int>(0);
  c.run = [runs, change](OpRun& e, const Dims& s) {
    Tensor x = e.in("inp", s), y = e.out("out", s);
    tanh_forward(y, x);
    change((*runs)++, y);
  };
  return c;
}

}  // namespace

TEST_CASE("the comparison walk fails on a wrong, unwritten or unrepeatable result",
          "[kernels][op_table]") {
  const Precision f32{}, exact{DType::f32, DType::f32, DType::f32, true};
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  auto untouched = spoiled_tanh([](int, const Tensor&) {});
  CHECK(compare_case(untouched, {7, 33}, f32, Device::cpu, seed).empty());
  CHECK(compare_case(untouched, {7, 33}, exact, Device::cpu, seed).empty());

  // 2e-5 relative on the device run: over the f32 bound of 1e-5.
  auto scaled = spoiled_tanh([](int run, const Tensor& y) {
    if (run == 0) scale_(y, 1.00002f);
  });
  std::vector<std::string> f = compare_case(scaled, {7, 33}, f32, Device::cpu, seed);
  REQUIRE(f.size() == 1);
  CHECK_THAT(f[0], Catch::Contains("out f32[7, 33]") && Catch::Contains("relative L2"));

  // One element one ulp off, in an exact precision.
  auto ulp = spoiled_tanh([](int run, const Tensor& y) {
    if (run == 0) y.data<float>()[40] = std::nextafter(y.data<float>()[40], 2.0f);
  });
  f = compare_case(ulp, {7, 33}, exact, Device::cpu, seed);
  REQUIRE(f.size() == 1);
  CHECK_THAT(f[0], Catch::Contains("first at element 40"));

  // An element the op forgot to write stays poisoned (NaN), exact or not.
  auto unwritten = spoiled_tanh([](int run, const Tensor& y) {
    if (run == 0) y.flat().rows(3, 4).fill_bytes_(0xff);
  });
  CHECK(compare_case(unwritten, {7, 33}, f32, Device::cpu, seed).size() == 1);
  auto unwritten_both =
      spoiled_tanh([](int, const Tensor& y) { y.flat().rows(3, 4).fill_bytes_(0xff); });
  f = compare_case(unwritten_both, {7, 33}, exact, Device::cpu, seed);
  REQUIRE(f.size() == 1);
  CHECK_THAT(f[0], Catch::Contains("non-finite"));

  // A device run that does not repeat itself.
  auto drifting = spoiled_tanh([](int run, const Tensor& y) {
    if (run == 1) scale_(y, 0.5f);
  });
  drifting.deterministic = true;
  f = compare_case(drifting, {7, 33}, f32, Device::cpu, seed);
  REQUIRE(!f.empty());
  CHECK_THAT(f[0], Catch::Contains("repeated device run"));

  // A failed check() and a throwing op are reported, not lost.
  OpCase checking = untouched;
  checking.run = [](OpRun& e, const Dims&) { e.check(false, "the entry's own check"); };
  f = compare_case(checking, {7, 33}, f32, Device::cpu, seed);
  REQUIRE(f.size() == 2);  // device and reference run
  CHECK_THAT(f[0], Catch::Contains("the device run: the entry's own check"));
  OpCase throwing = untouched;
  throwing.run = [](OpRun& e, const Dims& s) { tanh_forward(e.out("out", s), e.in("inp", {1})); };
  f = compare_case(throwing, {7, 33}, f32, Device::cpu, seed);
  REQUIRE(f.size() == 1);
  CHECK_THAT(f[0], Catch::Contains("threw") && Catch::Contains("tanh_forward"));
}

TEST_CASE("the gradient walk fails on a wrong, unwritten or overwriting backward",
          "[kernels][op_table]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  auto tanh_with = [](float factor, bool write) {
    OpCase c = spoiled_tanh([](int, const Tensor&) {});
    c.run = [factor, write](OpRun& e, const Dims& s) {
      Tensor x = e.in("inp", s, Role::act, {-3, 3}), y = e.out("out", s);
      tanh_forward(y, x);
      if (!e.backward()) return;
      Tensor dx = e.grad("inp");
      if (!write) return;
      tanh_backward(dx, e.upstream("out"), y);
      scale_(dx, factor);
    };
    return c;
  };
  CHECK(check_case_gradients(tanh_with(1.0f, true), {7, 33}, seed).empty());
  std::vector<std::string> f = check_case_gradients(tanh_with(1.001f, true), {7, 33}, seed);
  REQUIRE(f.size() == 1);
  CHECK_THAT(f[0], Catch::Contains("gradient of inp"));
  CHECK(check_case_gradients(tanh_with(1.0f, false), {7, 33}, seed).size() == 1);

  // A parameter gradient must be accumulated: one that overwrites loses its starting value.
  auto bias_with = [](bool overwrite) {
    OpCase c = spoiled_tanh([](int, const Tensor&) {});
    c.fd_step = 1e-2;
    c.run = [overwrite](OpRun& e, const Dims& s) {
      Tensor x = e.in("inp", s), b = e.in("bias", {s.back()}), y = e.out("out", s);
      bias_add_forward(y, x, b);
      if (!e.backward()) return;
      Tensor db = e.acc_grad("bias");
      if (overwrite) db.zero_();
      bias_add_backward(db, e.upstream("out"));
    };
    return c;
  };
  CHECK(check_case_gradients(bias_with(false), {7, 33}, seed).empty());
  f = check_case_gradients(bias_with(true), {7, 33}, seed);
  REQUIRE(f.size() == 1);
  CHECK_THAT(f[0], Catch::Contains("gradient of bias"));
}
