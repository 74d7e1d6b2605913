#include <catch2/catch.hpp>

#include "bench/bench.h"
#include "util/errors.h"

using namespace qrobust;

TEST_CASE("the penalty benchmark reports both steps, their ratio and the alternating rounds' median") {
  bench::BenchOptions options;
  options.batch = 4;
  options.steps = 1;
  options.warmup_steps = 0;
  options.threads = 1;
  options.alternate_rounds = 3;
  options.regularizer.name = "grad_l1";
  options.regularizer.lambda_w = 0.05;
  options.regularizer.lambda_a = 0.05;
  const auto out = bench::run_benchmark(options);
  const double plain = out["plain"]["step_seconds"], penalized = out["penalized"]["step_seconds"];
  CHECK(out["time_ratio"].get<double>() == Approx(penalized / plain));
  // Double backprop does at least the work of two plain steps.
  CHECK(out["time_ratio"].get<double>() > 1.5);
  const auto ratios = out["alternating"]["round_ratios"].get<std::vector<double>>();
  REQUIRE(ratios.size() == 3);
  CHECK(std::is_sorted(ratios.begin(), ratios.end()));
  CHECK(out["alternating"]["median_time_ratio"].get<double>() == ratios[1]);
  CHECK(ratios.front() > 1.0);

  options.alternate_rounds = -1;
  CHECK_THROWS_AS(bench::run_benchmark(options), UsageError);
}
