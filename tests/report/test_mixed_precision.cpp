#include <catch2/catch.hpp>

#include <tuple>

#include "report/mixed_precision.h"
#include "test_support.h"
#include "util/atomic_file.h"

using namespace qrobust;

namespace {
// A search document with the parts the experiment table reads: a `measured` plan at budget 4
// and the uniform w4a8 (average 4) and w8a8 (average 8).
nlohmann::json search_doc(double plan, double uniform4) {
  return {{"uniform",
           {{{"weight_bits", 4}, {"act_bits", 8}, {"average", 4.0}, {"accuracy", uniform4}},
            {{"weight_bits", 8}, {"act_bits", 8}, {"average", 8.0}, {"accuracy", 90.0}}}},
          {"plans", {{{"criterion", "measured"}, {"budget", 4.0}, {"average", 3.9}, {"accuracy", plan}}}}};
}
}  // namespace

TEST_CASE("the experiment's mixed-precision table pairs plans with uniform and with the reference variant by seed") {
  // none: plan 80, 81, 79 vs uniform 78, 78, 77; grad_l1: plan 82, 84, 80 (vs none: 2, 3, 1), entered
  // in another seed order; seed 4 only for grad_l1.
  std::vector<report::MixedPrecisionEntry> entries;
  const std::vector<std::tuple<int64_t, double, double>> none = {{1, 80, 78}, {2, 81, 78}, {3, 79, 77}};
  for (const auto& [seed, plan, uniform] : none) entries.push_back({"none", seed, "rtn", search_doc(plan, uniform)});
  const std::vector<std::tuple<int64_t, double>> penalized = {{3, 80}, {1, 82}, {4, 50}, {2, 84}};
  for (const auto& [seed, plan] : penalized) entries.push_back({"grad_l1", seed, "rtn", search_doc(plan, 79)});
  testing::TempDir dir;
  report::write_mixed_precision_table("mp", entries, dir.path(), "none");
  const auto doc = nlohmann::json::parse(util::read_file(dir.file("mixed_precision.json")));
  REQUIRE(doc["rows"].size() == 2);
  const auto& reference = doc["rows"][0];
  CHECK(reference["variant"] == "none");
  CHECK(reference["uniform"] == "w4a8");
  CHECK(reference["seeds"] == nlohmann::json({1, 2, 3}));
  // plan − uniform: 2, 3, 2 → mean 7/3, std 1/√3; ± t(0.975, 2) · (1/√3)/√3 = ± 1.434223
  CHECK(reference["difference_low"].get<double>() == Approx(7.0 / 3 - 1.434223).epsilon(1e-5));
  CHECK_FALSE(reference.contains("versus_reference"));
  const auto& versus = doc["rows"][1]["versus_reference"];
  CHECK(doc["rows"][1]["seeds"] == nlohmann::json({1, 2, 3, 4}));
  CHECK(versus["n"] == 3);  // seed 4 has no pair
  CHECK(versus["mean"].get<double>() == Approx(2.0));
  // 2 ± t(0.975, 2) · 1/√3
  CHECK(versus["low"].get<double>() == Approx(-0.484138).epsilon(1e-5));
  CHECK(versus["high"].get<double>() == Approx(4.484138).epsilon(1e-5));
  CHECK_FALSE(versus["excludes_zero"].get<bool>());
  const auto md = util::read_file(dir.file("mixed_precision.md"));
  CHECK_THAT(md, Catch::Contains("| plan − none [95 % CI] |"));
  CHECK_THAT(md, Catch::Contains("| measured | 4 | grad_l1 | 4 | ") && Catch::Contains("| 2.00 [-0.48, 4.48] |"));
  CHECK_THAT(md, Catch::Contains("| measured | 4 | none | 3 | 80.00 ± 1.00 | w4a8 | 77.67 ± 0.58 | 2.33 [0.90, 3.77] | – |"));
}
