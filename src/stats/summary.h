#pragma once
// Summaries of repeated measurements (seeds, calibration draws) and the paired comparison of
// two variants measured on the same seeds: mean, sample standard deviation, extremes, and the
// 95 % Student-t confidence interval of the mean paired difference.
#include <cstdint>
#include <vector>

namespace qrobust::stats {

struct Summary {
  int64_t n = 0;
  double mean = 0;
  double std = 0;  // sample standard deviation (n − 1 in the denominator); 0 when n < 2
  double min = 0, max = 0;
};
Summary summarize(const std::vector<double>& values);

// P(T <= t) for Student's t with `dof` degrees of freedom.
double student_t_cdf(double t, double dof);
// The t with P(T <= t) = p, 0 < p < 1.
double student_t_quantile(double p, double dof);

// The mean of a − b over pairs (a[i], b[i]) and its two-sided confidence interval
// mean ± t_{(1+level)/2, n−1} · std / √n; `defined` is false with fewer than two pairs.
struct PairedDifference {
  Summary difference;
  bool defined = false;
  double low = 0, high = 0;
  bool excludes_zero() const { return defined && (low > 0 || high < 0); }
};
PairedDifference paired_difference(const std::vector<double>& a, const std::vector<double>& b, double level = 0.95);

}  // namespace qrobust::stats
