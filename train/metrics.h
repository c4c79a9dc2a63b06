// GLUE metrics as datasets/evaluate's "glue" metric and run_glue's compute_metrics report them
// (spec §3 "Metric definitions", §2.7). Keys carry no "eval_" prefix; the trainer adds it.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace br {

// mean(pred == label) in double.
double accuracy(const std::vector<int32_t>& predictions, const std::vector<int32_t>& labels);
// sklearn f1_score, binary, positive class 1: 2 TP / (2 TP + FP + FN); 0 when TP = 0.
double f1_binary(const std::vector<int32_t>& predictions, const std::vector<int32_t>& labels);
// sklearn matthews_corrcoef (multiclass form over the confusion matrix C, n samples, c correct,
// t/p the true/predicted class counts): (c n - t.p) / sqrt((n^2 - p.p)(n^2 - t.t)); 0 when the
// denominator is 0.
double matthews_corrcoef(const std::vector<int32_t>& predictions, const std::vector<int32_t>& labels);
// scipy.stats.pearsonr(x, y)[0], computed in double; NaN when either side is constant.
double pearson(const std::vector<double>& x, const std::vector<double>& y);
// scipy.stats.spearmanr(x, y)[0]: Pearson of the average ranks (ties share their mean rank).
double spearman(const std::vector<double>& x, const std::vector<double>& y);
// scipy.stats.rankdata(x, method="average"), ranks from 1.
std::vector<double> average_ranks(const std::vector<double>& x);

// The task's metrics (GlueTask::metric_names) in run_glue's order, with combined_score (the mean of the metric's values)
// appended when the metric returns more than one. Classification: predictions and labels are
// class ids (argmax already taken). stsb: predictions are the squeezed logits; predictions and
// labels are cast to float32 first, as the metric's features are.
std::vector<std::pair<std::string, double>> glue_metrics_ordered(const std::string& task,
                                                                 const std::vector<double>& predictions,
                                                                 const std::vector<double>& labels);
std::map<std::string, double> glue_metrics(const std::string& task, const std::vector<double>& predictions,
                                           const std::vector<double>& labels);

// run_glue without --task_name: {"accuracy"} as a float32 mean, or {"mse"} for regression, the
// mean of float32 squared errors summed pairwise as numpy does.
std::map<std::string, double> file_metrics(bool is_regression, const std::vector<double>& predictions,
                                           const std::vector<double>& labels);

}  // namespace br
