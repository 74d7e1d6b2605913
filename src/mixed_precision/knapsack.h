#pragma once
// The multiple-choice knapsack a mixed-precision search reduces to: pick one choice per item
// (a bit-width per element, or per group of elements whose costs interact) so that the total
// cost stays within a budget and the total predicted damage is least.
//
// Solved exactly by dynamic programming over the Pareto frontier of (cost, damage) partial
// solutions: item by item, every reachable total cost is kept with its least damage, and a state
// that another beats on both cost and damage is dropped. No cost is rounded, so the answer is the
// optimum, not an approximation; the frontier is built once and answers every budget.
#include <cstdint>
#include <vector>

namespace qrobust::mixed_precision {

struct Choice {
  int64_t cost = 0;   // >= 0
  double value = 0;   // damage to minimise (may be negative)
};

struct KnapsackSolution {
  std::vector<size_t> choices;  // per item, the index of its choice
  int64_t cost = 0;
  double value = 0;
};

class MultipleChoiceKnapsack {
 public:
  // Every item needs at least one choice. States costing more than `max_budget` are never kept;
  // a frontier larger than `max_states` is a UsageError (too many candidates to solve exactly).
  MultipleChoiceKnapsack(std::vector<std::vector<Choice>> items, int64_t max_budget, size_t max_states = 4'000'000);

  // The least-damage solution costing at most `budget` (<= max_budget); a budget below the
  // cheapest solution is a UsageError that says what the cheapest costs.
  KnapsackSolution solve(int64_t budget) const;
  // The cheapest solution's cost.
  int64_t min_cost() const { return min_cost_; }

 private:
  struct State {
    int64_t cost;
    double value;
    uint32_t parent;  // state index in the previous item's frontier
    uint32_t choice;
  };
  std::vector<std::vector<Choice>> items_;
  std::vector<std::vector<State>> frontiers_;  // after each item, sorted by cost, value falling
  int64_t min_cost_ = 0;
  int64_t max_budget_ = 0;
};

}  // namespace qrobust::mixed_precision
