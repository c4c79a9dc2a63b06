// The op table (as ggml's test-backend-ops): every public op of kernels/*.h is one OpCase whose
// `run` builds the op's inputs, calls its forward and, where there is one, its backward, asking an
// OpRun for every tensor. The OpRun decides dtypes, device and values, so the same entry serves
// three walks (test_op_table.cpp):
//   - central differences in double on awkward sizes, for every entry with a backward;
//   - a device run against the CPU reference in double (or bit for bit, for exact precisions):
//     CUDA in each listed precision, and the CPU in those it has (exact, f32, f64), so that every
//     entry runs, and the comparison is known to work, without a GPU;
//   - coverage: every function declared in namespace br by kernels/*.h is named by an entry.
// An op's bad-input messages, formulas and special values stay in its own tests/kernels/test_*.cpp.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "harness.h"

namespace br::test {

// Which dtype an op's tensor gets in a run (OpRun::dtype).
enum class Role : uint8_t {
  act,    // activations and their gradients
  param,  // a second dtype the op accepts next to act on CUDA (LayerNorm weights, a table, C)
  grad,   // accumulated parameter gradients (fp32 master gradients under bf16 compute)
  stat,   // f32 statistics and losses (f64 in double runs)
  f32,    // f32 in every run (attention lse)
};

// The dtypes of one device run. exact: the CPU reference runs in these same dtypes and every
// result must match bit for bit; otherwise it runs in the case's reference dtype (double) and each
// result must match to a relative-L2 bound. tf32: set_cuda_tf32(true) for the device run.
struct Precision {
  DType act = DType::f32, param = DType::f32, grad = DType::f32;
  bool exact = false, tf32 = false;
  std::string str() const;
};

// Values of a random input: uniform in [lo, hi), rounded to a multiple of `step` when step > 0
// (ties); lo == hi gives the constant lo.
struct Init {
  double lo = -1, hi = 1, step = 0;
};

// The sizes of one case, read by the entry; OpCase::dims names them ("shape" = the tensor shape).
using Dims = std::vector<int64_t>;

class OpRun;

struct OpCase {
  std::string name;
  std::vector<std::string> covers;    // functions of kernels/*.h that `run` calls
  std::string dims;                   // names of the Dims entries, "B N S D p%", or "shape"
  std::vector<Dims> sizes;            // finite differences and the CPU run: small and awkward
  std::vector<Dims> device_sizes;     // the CUDA run (empty: `sizes`)
  std::vector<Precision> precisions;  // CUDA runs; [0] must be one the CPU has too
  std::function<void(OpRun&, const Dims&)> run;
  bool has_backward = true;  // walked by the finite-difference check
  double fd_step = 1e-5, fd_tol = 1e-6;
  DType reference = DType::f64;  // dtype of the CPU reference for non-exact precisions
  // Relative-L2 bound for a result of dtype `out` in a run of precision p (unset: tolerance(out)).
  std::function<double(const Precision& p, DType out)> tol;
  bool deterministic = false;  // the device run repeated must give the same bits
};

// What a case's `run` asks for its tensors. Inputs keep their values across the runs of one
// check (generated on first use from the seed, rounded to the device run's dtype), so the device
// run and the reference see the same numbers; results are compared by name, in order.
class OpRun {
 public:
  enum class Mode : uint8_t { gradcheck, gradcheck_forward, device, reference };
  OpRun(uint64_t seed, Precision p, Device device, DType reference);

  // Starts a run: results and analytic gradients are cleared, inputs kept.
  void start(Mode m);
  DType dtype(Role r) const { return dtype_in(mode_, r); }
  Device device() const { return mode_ == Mode::device ? device_ : Device::cpu; }
  // False while central differences re-run the forward: the entry returns before its backward.
  bool backward() const { return mode_ != Mode::gradcheck_forward; }
  // True in the device and reference runs: derived results (exact()) are only made for them.
  bool compared() const { return mode_ == Mode::device || mode_ == Mode::reference; }

  // A random input. In double runs it is the stored tensor itself (perturbed in place).
  Tensor in(const std::string& name, const Shape& s, Role r = Role::act, Init init = {});
  // A non-random argument (ids, masks, labels), made once on the CPU and copied to the device.
  Tensor data(const std::string& name, const std::function<Tensor(std::mt19937_64&)>& make);
  // A poisoned output, compared between runs; its bound is rel (and, if abs > 0, alternatively abs
  // on the largest difference) times the case's tolerance.
  Tensor out(const std::string& name, const Shape& s, Role r = Role::act, double rel = 1,
             double abs = 0);
  // An output that starts as a copy of `initial` (for in-place ops).
  Tensor out_init(const std::string& name, const Tensor& initial, double rel = 1);
  // A forward result that the backward reads: the reference backward gets the device run's
  // value, so the comparison of the backward is not blurred by the rounding of the forward.
  Tensor feed(const std::string& name, const Tensor& t);
  // The upstream gradient of output `name`; the double runs' loss is Σ dot(upstream, output).
  Tensor upstream(const std::string& name);
  // A scalar upstream gradient of a one-element output (a loss), rounded to float.
  float upstream_value(const std::string& name);
  // The gradient of input `name`: poisoned (overwritten by the op), or starting from a random
  // tensor that the gradient check subtracts (accumulated, as parameter gradients are).
  Tensor grad(const std::string& name, double rel = 1, double abs = 0);
  Tensor acc_grad(const std::string& name, double rel = 1);
  // The analytic gradient of input `name` when it is not an op output (identity, α·upstream).
  void grad_is(const std::string& name, const Tensor& g);
  // A result compared bit for bit in every precision (masks, kept patterns).
  void exact(const std::string& name, const Tensor& t);
  // A scalar result, within relative `rel` of the reference.
  void scalar(const std::string& name, double v, double rel);
  void check(bool ok, const std::string& what);

  struct Result {
    std::string name;
    Tensor t;
    double value = 0, rel = 1, abs = 0;
    bool exact = false, scalar = false;
  };
  const std::vector<Result>& results() const { return results_; }
  const std::vector<std::string>& failures() const { return failures_; }
  // Double runs: the inputs that have an analytic gradient, with it (accumulated ones minus start).
  std::vector<std::pair<Tensor, Tensor>> analytic() const;
  std::vector<std::string> analytic_names() const;
  double loss() const;  // Σ dot(upstream, output) over this run's outputs

 private:
  struct Input {
    Tensor host;  // f64 (rounded to the device run's dtype), on the CPU
    Role role;
  };
  DType dtype_in(Mode m, Role r) const;
  const Result& result(const std::string& name) const;
  Tensor add_result(const std::string& name, const Tensor& t, double rel, double abs);
  Tensor output(const std::string& name, const Shape& s, DType t);

  std::mt19937_64 rng_;
  Precision p_;
  Device device_;
  DType reference_;
  Mode mode_ = Mode::gradcheck;
  std::map<std::string, Input> inputs_;
  std::map<std::string, Tensor> data_, fed_, upstream_, scratch_;
  std::map<std::string, double> upstream_values_;
  std::vector<Result> results_;
  std::vector<std::string> failures_;
  std::vector<std::pair<std::string, Tensor>> grads_;                   // name, analytic
  std::vector<std::pair<std::string, std::pair<Tensor, Tensor>>> acc_;  // name, (final, start)
};

const std::vector<OpCase>& op_table();

// "B=2 N=3 S=7" (or "shape [7, 33]") for failure messages.
std::string dims_str(const OpCase& c, const Dims& d);
// Every combination of `base` with one value from each of `choices` appended.
std::vector<Dims> cross(const std::vector<Dims>& base,
                        const std::vector<std::vector<int64_t>>& choices);

// The walks; each returns its failures (empty = pass), each naming the result that failed.
std::vector<std::string> check_case_gradients(const OpCase& c, const Dims& d, uint64_t seed);
std::vector<std::string> compare_case(const OpCase& c, const Dims& d, const Precision& p,
                                      Device device, uint64_t seed);
// Function names declared in namespace br itself (not br::cpu, br::cuda or nested ones) by the
// headers kernels_dir/*.h, each with its header.
std::map<std::string, std::string> declared_functions(const std::string& kernels_dir);

}  // namespace br::test
