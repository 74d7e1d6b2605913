#include <catch2/catch.hpp>

#include <limits>
#include <random>

#include "mixed_precision/knapsack.h"
#include "util/errors.h"

using namespace qrobust;
using mixed_precision::Choice;

namespace {

// The least damage within `budget` by trying every combination (infinity where none fits).
double brute_force(const std::vector<std::vector<Choice>>& items, int64_t budget) {
  double best = std::numeric_limits<double>::infinity();
  std::vector<size_t> index(items.size(), 0);
  while (true) {
    int64_t cost = 0;
    double value = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      cost += items[i][index[i]].cost;
      value += items[i][index[i]].value;
    }
    if (cost <= budget) best = std::min(best, value);
    size_t i = 0;
    while (i < items.size() && ++index[i] == items[i].size()) index[i++] = 0;
    if (i == items.size()) break;
  }
  return best;
}

}  // namespace

TEST_CASE("the knapsack's plan equals brute-force enumeration on random 6 x 4 problems, at every budget") {
  for (uint32_t seed = 1; seed <= 60; ++seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int64_t> cost(0, 40);
    std::normal_distribution<double> value(0.0, 1.0);
    std::vector<std::vector<Choice>> items(6);
    for (auto& item : items)
      for (int j = 0; j < 4; ++j) item.push_back({cost(rng), seed % 3 == 0 ? std::round(value(rng)) : value(rng)});
    const int64_t max_budget = 6 * 40;
    const mixed_precision::MultipleChoiceKnapsack knapsack(items, max_budget);
    for (int64_t budget = 0; budget <= max_budget; budget += 7) {
      const double expected = brute_force(items, budget);
      if (budget < knapsack.min_cost()) {
        CHECK(std::isinf(expected));
        CHECK_THROWS_AS(knapsack.solve(budget), UsageError);
        continue;
      }
      const auto solution = knapsack.solve(budget);
      INFO("seed " << seed << " budget " << budget);
      CHECK(solution.value == Approx(expected).margin(1e-12));
      // The returned choices are a real plan with the cost and damage reported.
      int64_t cost_sum = 0;
      double value_sum = 0;
      for (size_t i = 0; i < items.size(); ++i) {
        cost_sum += items[i][solution.choices[i]].cost;
        value_sum += items[i][solution.choices[i]].value;
      }
      CHECK(cost_sum == solution.cost);
      CHECK(cost_sum <= budget);
      CHECK(value_sum == Approx(solution.value).margin(1e-12));
    }
  }
}

TEST_CASE("an infeasible budget is a clear error that names the cheapest plan's cost") {
  const std::vector<std::vector<Choice>> items{{{10, 1.0}, {20, 0.5}}, {{5, 2.0}, {8, 0.1}}};
  CHECK_THROWS_MATCHES(mixed_precision::MultipleChoiceKnapsack(items, 14), UsageError,
                       Catch::Message("no plan fits a budget of 14: the cheapest costs 15"));
  const mixed_precision::MultipleChoiceKnapsack knapsack(items, 28);
  CHECK_THROWS_MATCHES(knapsack.solve(12), UsageError, Catch::Message("no plan fits a budget of 12: the cheapest costs 15"));
  CHECK(knapsack.solve(15).value == 3.0);
  CHECK(knapsack.solve(18).choices == std::vector<size_t>{0, 1});
  CHECK(knapsack.solve(28).value == Approx(0.6));
}
