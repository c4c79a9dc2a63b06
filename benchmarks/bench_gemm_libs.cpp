// fp32 GEMM libraries side by side on every product a BERT training step does on the CPU, for
// all-MiniLM-L6-v2 (H 384, F 1536, head dim 32) and bert-base (H 768, F 3072, head dim 64) at
// batch x seq from 1x8 to 8x512. A linear layer y[T,N] = x[T,K]·W[N,K]ᵀ runs three products:
//   fwd    y  = x·Wᵀ          (M T, N N, K K)
//   dgrad  dx = dy·W          (M T, N K, K N)
//   wgrad  dW += dyᵀ·x        (M N, N K, K T, beta 1)
// and attention, per (sample, head) with S keys and head dim D, batch B·12:
//   qk  S = Q·Kᵀ [S,D]x[D,S]   pv  O = P·V [S,S]x[S,D]   (forward)
//   dp  dP = dO·Vᵀ             dv  dV = Pᵀ·dO            dq  dQ = dS·K    dk  dK = dSᵀ·Q
// The batched products run as one OpenMP loop over the batch with the library on one thread
// inside (how kernels/cpu/gemm.cpp spreads many small products).
//
// Libraries: Eigen (compiled in), and, when installed, OpenBLAS (openmp build), BLIS (openmp
// build) and oneDNN's dnnl_sgemm, each loaded with dlopen(RTLD_LOCAL): OpenBLAS and BLIS both
// export cblas_sgemm, so they cannot be linked into one program. For every shape and thread count
// the libraries alternate call by call (round r: eigen, openblas, blis, onednn), and each cell is
// the median over rounds, so a load spike on a shared machine hits all of them alike.
//
// Flags: --threads 1,2  --rounds 7  --models minilm,bert-base  --only fwd|dgrad|wgrad|attn
//        --stat median|best|both (best: the fastest round, what a library does when it gets the cores
//        on a machine loaded by other work)
#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>

namespace {

// One library's row-major C = alpha·op(A)·op(B) + beta·C, and how to set its thread count.
struct Lib {
  std::string name;
  std::string info;
  std::function<void(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                     const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                     float* C, int64_t ldc)>
      gemm;
  std::function<void(int)> set_threads;
};

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;

Lib eigen_lib() {
  Lib l;
  l.name = "eigen";
  l.info = "Eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." +
           std::to_string(EIGEN_MAJOR_VERSION) + "." + std::to_string(EIGEN_MINOR_VERSION);
  l.gemm = [](bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
              int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    Eigen::Map<RowMajor, 0, Stride> c(C, M, N, Stride(ldc));
    Eigen::Map<const RowMajor, 0, Stride> a(A, ta ? K : M, ta ? M : K, Stride(lda));
    Eigen::Map<const RowMajor, 0, Stride> b(B, tb ? N : K, tb ? K : N, Stride(ldb));
    if (beta == 0.0f) {
      if (!ta && !tb) c.noalias() = alpha * a * b;
      else if (!ta && tb) c.noalias() = alpha * a * b.transpose();
      else if (ta && !tb) c.noalias() = alpha * a.transpose() * b;
      else c.noalias() = alpha * a.transpose() * b.transpose();
    } else {
      if (beta != 1.0f) c *= beta;
      if (!ta && !tb) c.noalias() += alpha * a * b;
      else if (!ta && tb) c.noalias() += alpha * a * b.transpose();
      else if (ta && !tb) c.noalias() += alpha * a.transpose() * b;
      else c.noalias() += alpha * a.transpose() * b.transpose();
    }
  };
  l.set_threads = [](int t) { Eigen::setNbThreads(t); };
  return l;
}

void* open_first(const std::vector<std::string>& paths, std::string& found) {
  for (const std::string& p : paths)
    if (void* h = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL)) {
      found = p;
      return h;
    }
  return nullptr;
}

template <typename F>
F sym(void* h, const char* name) {
  void* s = dlsym(h, name);
  if (!s) {
    std::fprintf(stderr, "bench_gemm_libs: %s not found\n", name);
    std::exit(1);
  }
  return reinterpret_cast<F>(s);
}

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
using cblas_sgemm_t = void (*)(int, int, int, int, int, int, float, const float*, int,
                               const float*, int, float, float*, int);

std::function<void(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                   const float*, int64_t, float, float*, int64_t)>
cblas_gemm(cblas_sgemm_t f) {
  return [f](bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
             int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    f(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, int(M), int(N), int(K), alpha, A,
      int(lda), B, int(ldb), beta, C, int(ldc));
  };
}

bool openblas_lib(Lib& l) {
  std::string path;
  void* h = open_first({"/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0",
                        "libopenblas.so.0"},
                       path);
  if (!h) return false;
  l.name = "openblas";
  auto corename = sym<char* (*)()>(h, "openblas_get_corename");
  auto config = sym<char* (*)()>(h, "openblas_get_config");
  l.info = std::string(config()) + ", core " + corename() + " (" + path + ")";
  l.gemm = cblas_gemm(sym<cblas_sgemm_t>(h, "cblas_sgemm"));
  auto set = sym<void (*)(int)>(h, "openblas_set_num_threads");
  l.set_threads = [set](int t) { set(t); };
  return true;
}

bool blis_lib(Lib& l) {
  std::string path;
  void* h =
      open_first({"/usr/lib/x86_64-linux-gnu/blis-openmp/libblis.so.4", "libblis.so.4"}, path);
  if (!h) return false;
  l.name = "blis";
  auto arch_id = sym<int (*)()>(h, "bli_arch_query_id");
  auto arch_string = sym<char* (*)(int)>(h, "bli_arch_string");
  auto version = sym<char* (*)()>(h, "bli_info_get_version_str");
  l.info = std::string("BLIS ") + version() + ", arch " + arch_string(arch_id()) + " (" + path + ")";
  l.gemm = cblas_gemm(sym<cblas_sgemm_t>(h, "cblas_sgemm"));
  auto set = sym<void (*)(int64_t)>(h, "bli_thread_set_num_threads");
  l.set_threads = [set](int t) { set(t); };
  return true;
}

bool onednn_lib(Lib& l) {
  std::string path;
  void* h = open_first({"libdnnl.so.2", "libdnnl.so.3"}, path);
  if (!h) return false;
  l.name = "onednn";
  struct Version {
    int major, minor, patch;
    const char* hash;
    unsigned cpu_runtime, gpu_runtime;
  };
  auto version = sym<const Version* (*)()>(h, "dnnl_version");
  auto isa = sym<int (*)()>(h, "dnnl_get_effective_cpu_isa");
  const Version* v = version();
  l.info = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
           std::to_string(v->patch) + ", effective ISA 0x" + [&] {
             char b[16];
             std::snprintf(b, sizeof b, "%x", isa());
             return std::string(b);
           }() + " (" + path + ")";
  using sgemm_t = int (*)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);
  auto f = sym<sgemm_t>(h, "dnnl_sgemm");
  l.gemm = [f](bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    if (f(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) != 0) {
      std::fprintf(stderr, "dnnl_sgemm failed\n");
      std::exit(1);
    }
  };
  // oneDNN threads with the OpenMP runtime's omp_get_max_threads().
  l.set_threads = [](int) {};
  return true;
}

struct Product {
  std::string model, what;  // e.g. "minilm", "ffn1 fwd"
  int64_t tokens;           // B·S (linear) or S (attention)
  int64_t batch, M, N, K;
  bool ta, tb;
  float beta;
  double flops() const { return 2.0 * double(batch) * double(M) * double(N) * double(K); }
};

struct Model {
  std::string name;
  int64_t H, F, heads;
};

struct BatchSeq {
  int64_t B, S;
};

std::vector<Product> products(const std::vector<Model>& models, const std::string& only) {
  const std::vector<BatchSeq> shapes = {{1, 8},   {16, 8},  {16, 32}, {16, 64},
                                        {16, 128}, {8, 128}, {2, 512}, {8, 512}};
  std::vector<Product> out;
  for (const Model& m : models) {
    // Linear layers by token count (shapes with the same B·S share them).
    std::vector<int64_t> tokens;
    for (BatchSeq bs : shapes)
      if (std::find(tokens.begin(), tokens.end(), bs.B * bs.S) == tokens.end())
        tokens.push_back(bs.B * bs.S);
    std::sort(tokens.begin(), tokens.end());
    struct Layer {
      const char* name;
      int64_t in, out;
    };
    const Layer layers[] = {{"qkv/ao", m.H, m.H}, {"ffn1", m.H, m.F}, {"ffn2", m.F, m.H}};
    for (int64_t T : tokens)
      for (const Layer& L : layers) {
        if (only.empty() || only == "fwd")
          out.push_back({m.name, std::string(L.name) + " fwd", T, 1, T, L.out, L.in, false, true,
                         0.0f});
        if (only.empty() || only == "dgrad")
          out.push_back({m.name, std::string(L.name) + " dgrad", T, 1, T, L.in, L.out, false,
                         false, 0.0f});
        if (only.empty() || only == "wgrad")
          out.push_back({m.name, std::string(L.name) + " wgrad", T, 1, L.out, L.in, T, true,
                         false, 1.0f});
      }
    if (!only.empty() && only != "attn") continue;
    const int64_t D = m.H / m.heads;
    for (BatchSeq bs : shapes) {
      const int64_t G = bs.B * m.heads, S = bs.S;
      const std::string tag = " b" + std::to_string(bs.B);
      out.push_back({m.name, "attn qk" + tag, S, G, S, S, D, false, true, 0.0f});
      out.push_back({m.name, "attn pv" + tag, S, G, S, D, S, false, false, 0.0f});
      out.push_back({m.name, "attn dp" + tag, S, G, S, S, D, false, true, 0.0f});
      out.push_back({m.name, "attn dv" + tag, S, G, S, D, S, true, false, 0.0f});
      out.push_back({m.name, "attn dq" + tag, S, G, S, D, S, false, false, 0.0f});
      out.push_back({m.name, "attn dk" + tag, S, G, S, D, S, true, false, 0.0f});
    }
  }
  return out;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream in(s);
  for (std::string x; std::getline(in, x, ',');) v.push_back(x);
  return v;
}

// Runs p once with `threads` threads: a lone product threaded inside the library, a batch spread
// over the batch with the library on one thread.
void run_product(const Lib& lib, const Product& p, int threads, const float* A, const float* B,
                 float* C) {
  const int64_t lda = p.ta ? p.M : p.K, ldb = p.tb ? p.K : p.N, ldc = p.N;
  if (p.batch == 1) {
    lib.gemm(p.ta, p.tb, p.M, p.N, p.K, 1.0f, A, lda, B, ldb, p.beta, C, ldc);
    return;
  }
  const int64_t sa = p.M * p.K, sb = p.K * p.N, sc = p.M * p.N;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t g = 0; g < p.batch; ++g)
    lib.gemm(p.ta, p.tb, p.M, p.N, p.K, 1.0f, A + g * sa, lda, B + g * sb, ldb, p.beta,
             C + g * sc, ldc);
}

void set_threads(const std::vector<Lib>& libs, const Product& p, int threads) {
  const int inner = p.batch == 1 ? threads : 1;
  omp_set_num_threads(inner);
  for (const Lib& l : libs) l.set_threads(inner);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> thread_counts = {1, 2};
  int rounds = 7;
  std::vector<std::string> model_names = {"minilm", "bert-base"};
  std::string only, stat = "median";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--threads") {
      thread_counts.clear();
      for (const std::string& t : split(value)) thread_counts.push_back(std::stoi(t));
    } else if (flag == "--rounds") {
      rounds = std::stoi(value);
    } else if (flag == "--models") {
      model_names = split(value);
    } else if (flag == "--stat" && (value == "median" || value == "best" || value == "both")) {
      stat = value;
    } else if (flag == "--only") {
      only = value;
    } else {
      std::fprintf(stderr, "bench_gemm_libs: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  std::vector<Model> models;
  for (const std::string& n : model_names) {
    if (n == "minilm") models.push_back({n, 384, 1536, 12});
    else if (n == "bert-base") models.push_back({n, 768, 3072, 12});
    else {
      std::fprintf(stderr, "bench_gemm_libs: unknown model %s (minilm, bert-base)\n", n.c_str());
      return 2;
    }
  }

  std::vector<Lib> libs = {eigen_lib()};
  for (auto load : {openblas_lib, blis_lib, onednn_lib}) {
    Lib l;
    if (load(l)) libs.push_back(l);
  }
  for (const Lib& l : libs) std::printf("# %-9s %s\n", l.name.c_str(), l.info.c_str());
  std::printf("# cells: GFLOP/s, %s of %d rounds; libraries alternate call by call\n",
              stat.c_str(), rounds);

  std::printf("%-9s %-16s %5s %5s %5s %5s %5s %2s %-6s", "model", "product", "T|S", "batch", "M",
              "N", "K", "t", "stat");
  for (const Lib& l : libs) std::printf(" %9s", l.name.c_str());
  std::printf("  best (x eigen)\n");

  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const Product& p : products(models, only)) {
    std::vector<float> A(size_t(p.batch * p.M * p.K)), B(size_t(p.batch * p.K * p.N)),
        C(size_t(p.batch * p.M * p.N), 0.0f);
    for (float& x : A) x = u(rng);
    for (float& x : B) x = u(rng);
    // Calls per sample so that a sample is at least ~0.5 ms: tiny products are timed in groups.
    const int calls = int(std::clamp(std::ceil(1e8 / p.flops()), 1.0, 1000.0));
    for (int threads : thread_counts) {
      set_threads(libs, p, threads);
      // Correctness guard: every library against Eigen on this product with beta = 0.
      std::vector<float> ref(C.size());
      {
        Product q = p;
        q.beta = 0.0f;
        run_product(libs[0], q, threads, A.data(), B.data(), ref.data());
        for (size_t li = 1; li < libs.size(); ++li) {
          std::vector<float> got(C.size());
          run_product(libs[li], q, threads, A.data(), B.data(), got.data());
          double num = 0, den = 0;
          for (size_t i = 0; i < got.size(); ++i) {
            num += double(got[i] - ref[i]) * double(got[i] - ref[i]);
            den += double(ref[i]) * double(ref[i]);
          }
          if (std::sqrt(num / den) > 1e-5) {
            std::fprintf(stderr, "bench_gemm_libs: %s differs from eigen on %s %s (rel %.3g)\n",
                         libs[li].name.c_str(), p.model.c_str(), p.what.c_str(),
                         std::sqrt(num / den));
            return 1;
          }
        }
      }
      std::vector<std::vector<double>> t(libs.size());
      for (int r = -1; r < rounds; ++r)  // round -1 warms each library up on this shape
        for (size_t li = 0; li < libs.size(); ++li) {
          auto t0 = std::chrono::steady_clock::now();
          for (int c = 0; c < calls; ++c)
            run_product(libs[li], p, threads, A.data(), B.data(), C.data());
          const double s =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (r >= 0) t[li].push_back(s / calls);
        }
      for (size_t li = 0; li < libs.size(); ++li) std::sort(t[li].begin(), t[li].end());
      for (const char* which : {"median", "best"}) {
        if (stat != "both" && stat != which) continue;
        const bool best_round = std::strcmp(which, "best") == 0;
        std::printf("%-9s %-16s %5lld %5lld %5lld %5lld %5lld %2d %-6s", p.model.c_str(),
                    p.what.c_str(), (long long)p.tokens, (long long)p.batch, (long long)p.M,
                    (long long)p.N, (long long)p.K, threads, which);
        std::vector<double> gf(libs.size());
        for (size_t li = 0; li < libs.size(); ++li) {
          gf[li] = p.flops() / (best_round ? t[li][0] : t[li][t[li].size() / 2]) / 1e9;
          std::printf(" %9.1f", gf[li]);
        }
        const size_t best = size_t(std::max_element(gf.begin(), gf.end()) - gf.begin());
        std::printf("  %s (%.2f)\n", libs[best].name.c_str(), gf[best] / gf[0]);
      }
      std::fflush(stdout);
    }
  }
  return 0;
}
