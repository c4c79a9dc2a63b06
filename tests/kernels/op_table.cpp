// OpRun and the three walks over the op table (op_table.h); the entries are in op_cases.cpp.
#include "op_table.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "kernels/gemm.h"

namespace br::test {

std::string Precision::str() const {
  std::string s(dtype_name(act));
  if (param != act || grad != act)
    s += " param " + std::string(dtype_name(param)) + " grad " + std::string(dtype_name(grad));
  if (exact) s += " exact";
  if (tf32) s += " tf32";
  return s;
}

OpRun::OpRun(uint64_t seed, Precision p, Device device, DType reference)
    : rng_(seed), p_(p), device_(device), reference_(reference) {}

void OpRun::start(Mode m) {
  mode_ = m;
  results_.clear();
  failures_.clear();
  grads_.clear();
  acc_.clear();
}

DType OpRun::dtype_in(Mode m, Role r) const {
  if (r == Role::f32) return DType::f32;
  if (m == Mode::gradcheck || m == Mode::gradcheck_forward) return DType::f64;
  if (m == Mode::reference && !p_.exact) {
    if (r == Role::stat) return reference_ == DType::f64 ? DType::f64 : DType::f32;
    return reference_;
  }
  switch (r) {
    case Role::act: return p_.act;
    case Role::param: return p_.param;
    case Role::grad: return p_.grad;
    default: return p_.act == DType::f64 ? DType::f64 : DType::f32;
  }
}

Tensor OpRun::in(const std::string& name, const Shape& s, Role r, Init init) {
  auto it = inputs_.find(name);
  if (it == inputs_.end()) {
    std::uniform_real_distribution<double> u(init.lo, init.hi);
    std::vector<double> v(size_t(shape_numel(s)));
    for (double& x : v) {
      x = init.lo == init.hi ? init.lo : u(rng_);
      if (init.step > 0) x = init.step * std::round(x / init.step);
    }
    Tensor host = Tensor::from_host(v, s);
    const bool double_run = mode_ == Mode::gradcheck || mode_ == Mode::gradcheck_forward;
    if (!double_run)
      host = to_f64_cpu(to_dtype_device(host, dtype_in(Mode::device, r), Device::cpu));
    it = inputs_.emplace(name, Input{host, r}).first;
  }
  BR_CHECK(it->second.host.shape() == s, "OpRun::in: {} asked as {}, made as {}", name,
           shape_str(s), it->second.host.str());
  if (mode_ == Mode::gradcheck || mode_ == Mode::gradcheck_forward) return it->second.host;
  return to_dtype_device(it->second.host, dtype(r), device());
}

Tensor OpRun::data(const std::string& name, const std::function<Tensor(std::mt19937_64&)>& make) {
  auto it = data_.find(name);
  if (it == data_.end()) it = data_.emplace(name, make(rng_)).first;
  return device() == Device::cpu ? it->second : it->second.to(device());
}

Tensor OpRun::add_result(const std::string& name, const Tensor& t, double rel, double abs) {
  for (const Result& r : results_)
    BR_CHECK(r.name != name, "OpRun: result {} registered twice", name);
  results_.push_back(Result{name, t, 0, rel, abs, false, false});
  return t;
}

// Central differences re-run the forward thousands of times: outputs are then reused, not
// reallocated (poisoned or re-initialised all the same).
Tensor OpRun::output(const std::string& name, const Shape& s, DType t) {
  if (mode_ == Mode::gradcheck_forward) {
    auto it = scratch_.find(name);
    if (it != scratch_.end() && it->second.shape() == s && it->second.dtype() == t)
      return it->second;
  }
  Tensor fresh = Tensor::empty(s, t, device());
  if (mode_ == Mode::gradcheck || mode_ == Mode::gradcheck_forward) scratch_[name] = fresh;
  return fresh;
}

Tensor OpRun::out(const std::string& name, const Shape& s, Role r, double rel, double abs) {
  Tensor t = output(name, s, dtype(r));
  poison(t);
  return add_result(name, t, rel, abs);
}

Tensor OpRun::out_init(const std::string& name, const Tensor& initial, double rel) {
  Tensor t = output(name, initial.shape(), initial.dtype());
  BR_CHECK(t.device() == initial.device(), "OpRun::out_init: {} is {}", name, initial.str());
  t.copy_from(initial);
  return add_result(name, t, rel, 0);
}

Tensor OpRun::feed(const std::string& name, const Tensor& t) {
  if (mode_ == Mode::device) fed_[name] = t.to(Device::cpu);
  if (mode_ != Mode::reference) return t;
  auto it = fed_.find(name);
  BR_CHECK(it != fed_.end(), "OpRun::feed: {} was not fed by the device run", name);
  return to_dtype_device(it->second, t.dtype(), Device::cpu);
}

const OpRun::Result& OpRun::result(const std::string& name) const {
  for (const Result& r : results_)
    if (r.name == name) return r;
  fail("OpRun: no result named {}", name);
}

Tensor OpRun::upstream(const std::string& name) {
  const Tensor& o = result(name).t;
  auto it = upstream_.find(name);
  if (it == upstream_.end()) {
    Tensor v = random_tensor(o.shape(), DType::f64, rng_);
    it = upstream_.emplace(name, to_f64_cpu(to_dtype_device(v, o.dtype(), Device::cpu))).first;
  }
  if (mode_ == Mode::gradcheck) return it->second;
  return to_dtype_device(it->second, o.dtype(), o.device());
}

float OpRun::upstream_value(const std::string& name) {
  BR_CHECK(result(name).t.numel() == 1, "OpRun::upstream_value: {} is not one element", name);
  auto it = upstream_values_.find(name);
  if (it == upstream_values_.end())
    it = upstream_values_
             .emplace(name, double(std::uniform_real_distribution<float>(0.5f, 1.5f)(rng_)))
             .first;
  return float(it->second);
}

Tensor OpRun::grad(const std::string& name, double rel, double abs) {
  auto it = inputs_.find(name);
  BR_CHECK(it != inputs_.end(), "OpRun::grad: no input named {}", name);
  Tensor g = out("d" + name, it->second.host.shape(), it->second.role, rel, abs);
  grads_.emplace_back(name, g);
  return g;
}

Tensor OpRun::acc_grad(const std::string& name, double rel) {
  auto it = inputs_.find(name);
  BR_CHECK(it != inputs_.end(), "OpRun::acc_grad: no input named {}", name);
  Tensor start = in("d" + name + " before", it->second.host.shape(), Role::grad);
  Tensor g = out_init("d" + name, start, rel);
  acc_.emplace_back(name, std::pair{g, start});
  return g;
}

void OpRun::grad_is(const std::string& name, const Tensor& g) { grads_.emplace_back(name, g); }

void OpRun::exact(const std::string& name, const Tensor& t) {
  add_result(name, t, 1, 0);
  results_.back().exact = true;
}

void OpRun::scalar(const std::string& name, double v, double rel) {
  results_.push_back(Result{name, Tensor(), v, rel, 0, false, true});
}

void OpRun::check(bool ok, const std::string& what) {
  if (!ok) failures_.push_back(what);
}

std::vector<std::string> OpRun::analytic_names() const {
  std::vector<std::string> names;
  for (const auto& [name, g] : grads_) names.push_back(name);
  for (const auto& [name, g] : acc_) names.push_back(name);
  return names;
}

std::vector<std::pair<Tensor, Tensor>> OpRun::analytic() const {
  std::vector<std::pair<Tensor, Tensor>> v;
  for (const auto& [name, g] : grads_) v.emplace_back(inputs_.at(name).host, to_f64_cpu(g));
  for (const auto& [name, g] : acc_) {
    std::vector<double> a = to_doubles(g.first), s = to_doubles(g.second);
    for (size_t i = 0; i < a.size(); ++i) a[i] -= s[i];
    v.emplace_back(inputs_.at(name).host, Tensor::from_host(a, g.first.shape()));
  }
  return v;
}

namespace {

// dot() without the copies to std::vector, for the f64 CPU tensors of double runs.
double dot64(const Tensor& a, const Tensor& b) {
  if (a.dtype() != DType::f64 || b.dtype() != DType::f64 || b.device() != Device::cpu)
    return dot(a, b);
  BR_CHECK(a.numel() == b.numel(), "OpRun::loss: {} against {}", a.str(), b.str());
  const double *x = a.data<double>(), *y = b.data<double>();
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += x[i] * y[i];
  return s;
}

}  // namespace

double OpRun::loss() const {
  double l = 0;
  for (const auto& [name, up] : upstream_) l += dot64(up, result(name).t);
  for (const auto& [name, v] : upstream_values_) l += v * to_doubles(result(name).t)[0];
  return l;
}

std::string dims_str(const OpCase& c, const Dims& d) {
  if (c.dims == "shape") return "shape " + shape_str(d);
  std::istringstream names(c.dims);
  std::string s, n;
  for (int64_t v : d) {
    names >> n;
    s += (s.empty() ? "" : " ") + n + "=" + std::to_string(v);
    n = "?";
  }
  return s;
}

std::vector<Dims> cross(const std::vector<Dims>& base,
                        const std::vector<std::vector<int64_t>>& choices) {
  std::vector<Dims> out = base;
  for (const std::vector<int64_t>& values : choices) {
    std::vector<Dims> next;
    for (const Dims& d : out)
      for (int64_t v : values) {
        next.push_back(d);
        next.back().push_back(v);
      }
    out = std::move(next);
  }
  return out;
}

namespace {

// Runs `run` in mode m, adding its failed checks, or the exception it threw, to `failures`.
bool run_mode(const OpCase& c, const Dims& d, OpRun& r, OpRun::Mode m, const char* what,
              std::vector<std::string>& failures) {
  r.start(m);
  try {
    c.run(r, d);
  } catch (const std::exception& e) {
    failures.push_back(std::string(what) + " threw: " + e.what());
    return false;
  }
  for (const std::string& f : r.failures()) failures.push_back(std::string(what) + ": " + f);
  return true;
}

bool same_bits(const Tensor& a, const Tensor& b, int64_t& first) {
  Tensor x = a.to(Device::cpu), y = b.to(Device::cpu);
  if (x.dtype() != y.dtype() || x.shape() != y.shape()) return false;
  const size_t es = dtype_size(x.dtype());
  const auto* p = static_cast<const unsigned char*>(x.raw());
  const auto* q = static_cast<const unsigned char*>(y.raw());
  for (int64_t i = 0; i < x.numel(); ++i)
    if (std::memcmp(p + size_t(i) * es, q + size_t(i) * es, es) != 0) {
      first = i;
      return false;
    }
  return true;
}

// One device result against the reference one: the failure, or "".
std::string compare_result(const OpCase& c, const Precision& p, const OpRun::Result& got,
                           const OpRun::Result& want, bool exact) {
  const std::string name = got.name;
  if (got.name != want.name) return "result " + got.name + " where the reference has " + want.name;
  if (got.scalar) {
    const double err = std::fabs(got.value - want.value);
    if (exact ? got.value == want.value : err <= got.rel * std::fabs(want.value)) return "";
    return name + ": " + std::to_string(got.value) + ", reference " + std::to_string(want.value);
  }
  if (got.t.shape() != want.t.shape())
    return name + ": " + got.t.str() + ", reference " + want.t.str();
  if (exact || got.exact) {
    int64_t first = -1;
    if (!same_bits(got.t, want.t, first))
      return name + ": " + got.t.str() + " differs from the reference " + want.t.str() +
             (first >= 0 ? " first at element " + std::to_string(first) : "");
    for (double v : to_doubles(got.t))
      if (!std::isfinite(v)) return name + ": holds a non-finite value (unwritten?)";
    return "";
  }
  const double bound = c.tol ? c.tol(p, got.t.dtype()) : tolerance(got.t.dtype());
  const double err = rel_l2(got.t, want.t);
  if (err <= got.rel * bound) return "";
  if (got.abs > 0 && max_abs_diff(got.t, want.t) <= got.abs * bound) return "";
  std::ostringstream m;
  m << name << " " << got.t.str() << ": relative L2 " << err << " > " << got.rel * bound;
  if (got.abs > 0)
    m << " and largest difference " << max_abs_diff(got.t, want.t) << " > " << got.abs * bound;
  return m.str();
}

std::vector<std::string> compare_results(const OpCase& c, const Precision& p,
                                         const std::vector<OpRun::Result>& got,
                                         const std::vector<OpRun::Result>& want, bool exact) {
  std::vector<std::string> f;
  if (got.size() != want.size())
    f.push_back(std::to_string(got.size()) + " results, reference " + std::to_string(want.size()));
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    std::string m = compare_result(c, p, got[i], want[i], exact);
    if (!m.empty()) f.push_back(m);
  }
  return f;
}

// Restores the TF32 setting on every way out.
struct Tf32Scope {
  bool before = cuda_tf32();
  explicit Tf32Scope(bool on) { set_cuda_tf32(on); }
  ~Tf32Scope() { set_cuda_tf32(before); }
};

}  // namespace

std::vector<std::string> check_case_gradients(const OpCase& c, const Dims& d, uint64_t seed) {
  std::vector<std::string> f;
  OpRun r(seed, Precision{}, Device::cpu, DType::f64);
  if (!run_mode(c, d, r, OpRun::Mode::gradcheck, "the double run", f)) return f;
  std::vector<std::pair<Tensor, Tensor>> a = r.analytic();
  const std::vector<std::string> names = r.analytic_names();
  if (a.empty()) f.push_back("no analytic gradient registered");
  std::vector<Tensor> inputs, grads;
  for (auto& [x, g] : a) {
    inputs.push_back(x);
    grads.push_back(g);
  }
  auto loss = [&] {
    r.start(OpRun::Mode::gradcheck_forward);
    c.run(r, d);
    return r.loss();
  };
  try {
    const GradientError e = gradient_error(inputs, grads, loss, c.fd_step, c.fd_tol);
    if (e.failed) {
      std::ostringstream m;
      m << "gradient of " << names[e.input] << " element " << e.element << ": analytic "
        << e.analytic << ", central difference " << e.numeric << ", relative error " << e.worst
        << " > " << c.fd_tol;
      f.push_back(m.str());
    }
  } catch (const std::exception& e) {
    f.push_back(std::string("a forward re-run threw: ") + e.what());
  }
  return f;
}

std::vector<std::string> compare_case(const OpCase& c, const Dims& d, const Precision& p,
                                      Device device, uint64_t seed) {
  std::vector<std::string> f;
  OpRun r(seed, p, device, c.reference);
  std::vector<OpRun::Result> got;
  {
    Tf32Scope tf32(device == Device::cuda && p.tf32);
    if (!run_mode(c, d, r, OpRun::Mode::device, "the device run", f)) return f;
    got = r.results();
    if (c.deterministic) {
      if (!run_mode(c, d, r, OpRun::Mode::device, "the repeated device run", f)) return f;
      for (std::string& m : compare_results(c, p, r.results(), got, true))
        f.push_back("repeated device run: " + m);
    }
  }
  if (!run_mode(c, d, r, OpRun::Mode::reference, "the reference run", f)) return f;
  for (std::string& m : compare_results(c, p, got, r.results(), p.exact)) f.push_back(m);
  return f;
}

std::map<std::string, std::string> declared_functions(const std::string& kernels_dir) {
  // An unindented declaration or inline definition: return type, name, '('.
  const std::regex decl(R"(^(?:inline\s+)?[A-Za-z_][\w:<>]*[\s&*]+([a-z_][a-z0-9_]*)\s*\()");
  const std::regex ns(R"(^namespace\s*([\w:]*)\s*\{)");
  std::map<std::string, std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator(kernels_dir)) {
    if (entry.path().extension() != ".h") continue;
    std::ifstream in(entry.path());
    std::string line;
    std::vector<std::string> open;  // the namespaces around the line, outermost first
    std::smatch m;
    while (std::getline(in, line)) {
      if (std::regex_search(line, m, ns))
        open.push_back(m[1]);
      else if (line.rfind("}  // namespace", 0) == 0 && !open.empty())
        open.pop_back();
      else if (open == std::vector<std::string>{"br"} && std::regex_search(line, m, decl))
        found.emplace(m[1], entry.path().filename().string());
    }
  }
  return found;
}

}  // namespace br::test
