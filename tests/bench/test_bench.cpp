#include <catch2/catch.hpp>

#include "bench/bench.h"
#include "util/errors.h"

using namespace qrobust;

namespace {
// A quick grad_l1 benchmark: no warm-up, 3 alternating rounds.
bench::BenchOptions grad_l1_bench(int64_t batch, int64_t steps) {
  bench::BenchOptions options;
  options.batch = batch;
  options.steps = steps;
  options.warmup_steps = 0;
  options.alternate_rounds = 3;
  options.regularizer.penalty(regularize::Penalty::kGradL1).lambda_w(0.05).lambda_a(0.05);
  return options;
}
}  // namespace

TEST_CASE("the penalty benchmark reports both steps, their ratio and the alternating rounds' median") {
  auto options = grad_l1_bench(4, 1);
  const auto out = bench::run_benchmark(options);
  const double plain = out["plain"]["step_seconds"], penalized = out["penalized"]["step_seconds"];
  CHECK(out["time_ratio"].get<double>() == Approx(penalized / plain));
  // Timings are the benchmark's output, not a test's: what is checked is the work timed.
  CHECK(out["plain"]["timed_steps"] == 1);
  CHECK(out["plain"]["penalized_steps"] == 0);
  CHECK(out["penalized"]["timed_steps"] == 1);
  CHECK(out["penalized"]["penalized_steps"] == 1);
  const auto ratios = out["alternating"]["round_ratios"].get<std::vector<double>>();
  REQUIRE(ratios.size() == 3);
  CHECK(std::is_sorted(ratios.begin(), ratios.end()));
  CHECK(out["alternating"]["median_time_ratio"].get<double>() == ratios[1]);
  CHECK(ratios.front() > 0);

  options.alternate_rounds = -1;
  CHECK_THROWS_AS(bench::run_benchmark(options), UsageError);
}

TEST_CASE("the amortized penalties are timed in the same alternating rounds, each against that round's plain steps") {
  auto options = grad_l1_bench(8, 2);
  options.amortized = {"every=4", "subbatch=2,every=1", "method=finite_difference"};
  const auto out = bench::run_benchmark(options);
  const auto& amortized = out["alternating"]["amortized"];
  REQUIRE(amortized.size() == 3);
  CHECK(amortized[0]["every"] == 4);
  CHECK(amortized[1]["subbatch"] == 2);
  CHECK(amortized[2]["method"] == "finite_difference");
  for (const auto& entry : amortized) {
    const auto ratios = entry["round_ratios"].get<std::vector<double>>();
    REQUIRE(ratios.size() == 3);
    CHECK(entry["median_time_ratio"].get<double>() == ratios[1]);
  }
  // every=4 is timed over a whole cycle (2 steps asked, 4 timed), one of them penalized; the
  // sub-batch and finite-difference steps pay their penalty on every step.
  CHECK(amortized[0]["timed_steps"] == 4);
  CHECK(amortized[0]["penalized_steps"] == 1);
  for (const int i : {1, 2}) {
    CHECK(amortized[i]["timed_steps"] == 2);
    CHECK(amortized[i]["penalized_steps"] == 2);
  }
}

TEST_CASE("channels-last steps are timed in the same alternating rounds against the default layout") {
  auto options = grad_l1_bench(4, 1);
  options.compare_channels_last = true;
  const auto out = bench::run_benchmark(options);
  const auto& channels_last = out["alternating"]["channels_last"];
  for (const char* key : {"plain_speedup", "penalized_speedup", "median_time_ratio"}) {
    INFO(key);
    CHECK(channels_last[key].get<double>() > 0);
  }
  options.alternate_rounds = 0;
  CHECK_THROWS_WITH(bench::run_benchmark(options), Catch::Contains("--compare-channels-last"));
}

TEST_CASE("a bad amortized spec is a usage error naming it") {
  const auto grad_l1 = regularize::RegularizerOptions().penalty(regularize::Penalty::kGradL1);
  CHECK(bench::amortized_regularizer(grad_l1, "every=3,subbatch=16", 128).every() == 3);
  CHECK(bench::amortized_regularizer(grad_l1, "every=3,subbatch=16", 128).subbatch() == 16);
  auto error_of = [&](const std::string& spec, const regularize::RegularizerOptions& base) {
    try {
      bench::amortized_regularizer(base, spec, 128);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error_of("every=0", grad_l1) == "--amortized every=0: every must be an integer in 1..1000, got \"0\"");
  CHECK(error_of("subbatch=128", grad_l1) == "--amortized subbatch=128: subbatch must be an integer in 2..127, got \"128\"");
  CHECK(error_of("every=2x", grad_l1) == "--amortized every=2x: every must be an integer in 1..1000, got \"2x\"");
  CHECK(error_of("often=2", grad_l1) == "--amortized often=2: unknown key \"often\" (known: every, subbatch, method)");
  CHECK(error_of("every", grad_l1) == "--amortized every: expected key=value, got \"every\"");
  CHECK(error_of("subbatch=8,method=finite_difference", grad_l1) ==
        "--amortized subbatch=8,method=finite_difference: subbatch applies to method double_backprop");
  const auto kurtosis = regularize::RegularizerOptions().penalty(regularize::Penalty::kKurtosis);
  CHECK(error_of("every=2", kurtosis) == "--amortized every=2: applies to --regularizer grad_l1 or grad_l2");
  bench::BenchOptions options;
  options.regularizer = grad_l1;
  options.amortized = {"every=2"};
  CHECK_THROWS_WITH(bench::run_benchmark(options), Catch::Contains("give --alternate N"));
}
