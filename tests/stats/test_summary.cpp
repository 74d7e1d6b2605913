#include <catch2/catch.hpp>

#include <cmath>

#include "stats/summary.h"

using namespace qrobust;

TEST_CASE("Student-t quantiles match the printed tables, the CDF inverts them") {
  // Two-sided 95 % critical values, e.g. Fisher & Yates; the last is the normal's 1.959964.
  const std::vector<std::pair<double, double>> table = {{1, 12.706205}, {2, 4.302653}, {3, 3.182446},
                                                        {4, 2.776445}, {9, 2.262157}, {29, 2.045230},
                                                        {1e6, 1.959966}};
  for (const auto& [dof, t] : table) {
    INFO("dof " << dof);
    CHECK(stats::student_t_quantile(0.975, dof) == Approx(t).epsilon(1e-6));
    CHECK(stats::student_t_cdf(t, dof) == Approx(0.975).epsilon(1e-6));
    CHECK(stats::student_t_cdf(-t, dof) == Approx(0.025).epsilon(1e-5));
  }
  CHECK(stats::student_t_quantile(0.995, 2) == Approx(9.924843).epsilon(1e-6));
  CHECK(stats::student_t_cdf(0.0, 5) == Approx(0.5));
  // dof 1 is the Cauchy distribution: F(t) = 1/2 + atan(t)/π.
  CHECK(stats::student_t_cdf(0.7, 1) == Approx(0.5 + std::atan(0.7) / M_PI).epsilon(1e-10));
  CHECK_THROWS(stats::student_t_quantile(1.0, 3));
}

TEST_CASE("summaries and paired differences equal values computed by hand") {
  const auto s = stats::summarize({86.1, 84.3, 85.2});
  CHECK(s.n == 3);
  CHECK(s.mean == Approx(85.2));
  CHECK(s.std == Approx(0.9));  // deviations ±0.9, 0: sqrt(1.62 / 2)
  CHECK(s.min == 84.3);
  CHECK(s.max == 86.1);
  CHECK(stats::summarize({7.0}).std == 0);
  CHECK(stats::summarize({}).n == 0);

  // Differences 2, 1, 3: mean 2, std 1, half width t(0.975, 2) / sqrt(3) = 4.302653 / 1.732051.
  const auto d = stats::paired_difference({82, 80, 84}, {80, 79, 81});
  REQUIRE(d.defined);
  CHECK(d.difference.mean == Approx(2.0));
  CHECK(d.difference.std == Approx(1.0));
  CHECK(d.low == Approx(2.0 - 2.484138).epsilon(1e-6));
  CHECK(d.high == Approx(2.0 + 2.484138).epsilon(1e-6));
  CHECK_FALSE(d.excludes_zero());  // -0.48 .. 4.48
  const auto clear = stats::paired_difference({82, 81, 82.5}, {80, 79, 80.5});  // every difference 2: std 0
  CHECK(clear.excludes_zero());
  CHECK(clear.low == Approx(2.0));
  const auto single = stats::paired_difference({1}, {0});
  CHECK_FALSE(single.defined);
  CHECK_FALSE(single.excludes_zero());
  CHECK_THROWS(stats::paired_difference({1, 2}, {1}));
}
