#include "train/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "train/glue.h"

namespace br {
namespace {

void check_sizes(const char* op, size_t a, size_t b) {
  BR_CHECK(a == b, "{}: {} predictions but {} labels", op, a, b);
  BR_CHECK(a > 0, "{}: no predictions", op);
}

// numpy's pairwise_sum for float32 (8 accumulators in blocks of <= 128, halves above that).
float numpy_pairwise_sum(const float* a, size_t n) {
  if (n < 8) {
    float r = 0.f;
    for (size_t i = 0; i < n; ++i) r += a[i];
    return r;
  }
  if (n <= 128) {
    float r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + size_t(j)];
    float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return numpy_pairwise_sum(a, n2) + numpy_pairwise_sum(a + n2, n - n2);
}

std::vector<int32_t> to_ids(const char* op, const std::vector<double>& v, const char* what) {
  std::vector<int32_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    BR_CHECK(std::isfinite(v[i]) && v[i] == std::floor(v[i]) && v[i] >= 0 && v[i] < 2147483647.0,
             "{}: {} [{}] = {} is not a class id", op, what, i, v[i]);
    out[i] = int32_t(v[i]);
  }
  return out;
}

std::vector<double> as_float32(const std::vector<double>& v) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = double(float(v[i]));
  return out;
}

}  // namespace

double accuracy(const std::vector<int32_t>& predictions, const std::vector<int32_t>& labels) {
  check_sizes("accuracy", predictions.size(), labels.size());
  size_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) correct += predictions[i] == labels[i];
  return double(correct) / double(labels.size());
}

double f1_binary(const std::vector<int32_t>& predictions, const std::vector<int32_t>& labels) {
  check_sizes("f1_binary", predictions.size(), labels.size());
  int64_t tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    BR_CHECK((labels[i] == 0 || labels[i] == 1) && (predictions[i] == 0 || predictions[i] == 1),
             "f1_binary: [{}] prediction {} label {}, expected binary 0/1", i, predictions[i], labels[i]);
    tp += predictions[i] == 1 && labels[i] == 1;
    fp += predictions[i] == 1 && labels[i] == 0;
    fn += predictions[i] == 0 && labels[i] == 1;
  }
  if (tp == 0) return 0.0;
  return 2.0 * double(tp) / double(2 * tp + fp + fn);
}

double matthews_corrcoef(const std::vector<int32_t>& predictions, const std::vector<int32_t>& labels) {
  check_sizes("matthews_corrcoef", predictions.size(), labels.size());
  int32_t k = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    BR_CHECK(labels[i] >= 0 && predictions[i] >= 0, "matthews_corrcoef: [{}] negative class id", i);
    k = std::max({k, labels[i] + 1, predictions[i] + 1});
  }
  std::vector<double> t(size_t(k), 0.0), p(size_t(k), 0.0);
  double correct = 0, n = double(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    t[size_t(labels[i])] += 1;
    p[size_t(predictions[i])] += 1;
    correct += labels[i] == predictions[i];
  }
  double tp = 0, pp = 0, tt = 0;
  for (size_t c = 0; c < size_t(k); ++c) {
    tp += t[c] * p[c];
    pp += p[c] * p[c];
    tt += t[c] * t[c];
  }
  double cov_ytyp = correct * n - tp, cov_ypyp = n * n - pp, cov_ytyt = n * n - tt;
  if (cov_ypyp * cov_ytyt == 0) return 0.0;
  return cov_ytyp / std::sqrt(cov_ytyt * cov_ypyp);
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes("pearson", x.size(), y.size());
  BR_CHECK(x.size() >= 2, "pearson: needs at least 2 points, got {}", x.size());
  double n = double(x.size());
  double mx = std::accumulate(x.begin(), x.end(), 0.0) / n;
  double my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx == 0 || syy == 0) return NAN;
  double r = sxy / (std::sqrt(sxx) * std::sqrt(syy));
  return std::clamp(r, -1.0, 1.0);
}

std::vector<double> average_ranks(const std::vector<double>& x) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> ranks(x.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    double r = 0.5 * double(i + j) + 1.0;
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = r;
    i = j + 1;
  }
  return ranks;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes("spearman", x.size(), y.size());
  return pearson(average_ranks(x), average_ranks(y));
}

std::vector<std::pair<std::string, double>> glue_metrics_ordered(const std::string& task,
                                                                 const std::vector<double>& predictions,
                                                                 const std::vector<double>& labels) {
  std::string op = "glue_metrics(" + task + ")";
  check_sizes(op.c_str(), predictions.size(), labels.size());
  // The datasets metric also has configs for MNLI's two halves and for HANS, scored as MNLI is.
  const bool mnli_like = task == "mnli_matched" || task == "mnli_mismatched" || task == "hans";
  const std::string name = mnli_like ? "mnli" : task;
  const GlueTask* t = find_glue_task(name);
  if (!t || t->name != name) fail("glue_metrics: unknown task '{}'", task);
  std::vector<double> pf, lf;
  std::vector<int32_t> pi, li;
  if (t->is_regression()) {
    pf = as_float32(predictions);
    lf = as_float32(labels);
  } else {
    pi = to_ids(op.c_str(), predictions, "prediction");
    li = to_ids(op.c_str(), labels, "label");
  }
  std::vector<std::pair<std::string, double>> out;
  for (const std::string& m : t->metric_names) {
    if (m == "accuracy") out.emplace_back(m, accuracy(pi, li));
    else if (m == "f1") out.emplace_back(m, f1_binary(pi, li));
    else if (m == "matthews_correlation") out.emplace_back(m, matthews_corrcoef(pi, li));
    else if (m == "pearson") out.emplace_back(m, pearson(pf, lf));
    else if (m == "spearmanr") out.emplace_back(m, spearman(pf, lf));
    else if (m != "combined_score") fail("glue_metrics: task '{}' lists unknown metric '{}'", task, m);
  }
  if (out.size() > 1) {
    double sum = 0;
    for (const auto& kv : out) sum += kv.second;
    out.emplace_back("combined_score", sum / double(out.size()));
  }
  return out;
}

std::map<std::string, double> glue_metrics(const std::string& task, const std::vector<double>& predictions,
                                           const std::vector<double>& labels) {
  auto ordered = glue_metrics_ordered(task, predictions, labels);
  return {ordered.begin(), ordered.end()};
}

std::map<std::string, double> file_metrics(bool is_regression, const std::vector<double>& predictions,
                                           const std::vector<double>& labels) {
  check_sizes("file_metrics", predictions.size(), labels.size());
  size_t n = labels.size();
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    if (is_regression) {
      float d = float(predictions[i]) - float(labels[i]);
      v[i] = d * d;
    } else {
      v[i] = predictions[i] == labels[i] ? 1.f : 0.f;
    }
  }
  float mean = float(double(numpy_pairwise_sum(v.data(), n)) / double(n));
  return {{is_regression ? "mse" : "accuracy", double(mean)}};
}

}  // namespace br
