#include "mixed_precision/knapsack.h"

#include <algorithm>
#include <limits>
#include <string>

#include "util/errors.h"

namespace qrobust::mixed_precision {

MultipleChoiceKnapsack::MultipleChoiceKnapsack(std::vector<std::vector<Choice>> items, int64_t max_budget,
                                               size_t max_states)
    : items_(std::move(items)) {
  // The least each suffix of items can cost, to drop states that cannot end within max_budget.
  std::vector<int64_t> least_after(items_.size() + 1, 0);
  for (size_t i = items_.size(); i-- > 0;) {
    if (items_[i].empty()) throw std::invalid_argument("knapsack item " + std::to_string(i) + " has no choice");
    int64_t least = std::numeric_limits<int64_t>::max();
    for (const auto& choice : items_[i]) {
      if (choice.cost < 0) throw std::invalid_argument("knapsack costs must be >= 0");
      least = std::min(least, choice.cost);
    }
    least_after[i] = least_after[i + 1] + least;
  }
  min_cost_ = least_after[0];
  if (min_cost_ > max_budget)
    throw UsageError("no plan fits a budget of " + std::to_string(max_budget) + ": the cheapest costs " +
                     std::to_string(min_cost_));

  std::vector<State> frontier{{0, 0.0, 0, 0}};
  std::vector<State> next;
  for (size_t i = 0; i < items_.size(); ++i) {
    if (frontier.size() * items_[i].size() > 16 * max_states)
      throw UsageError("the mixed-precision search has too many candidate combinations to solve exactly (" +
                       std::to_string(frontier.size() * items_[i].size()) + " partial plans at element group " +
                       std::to_string(i) + "); give fewer candidate bit-widths");
    next.clear();
    for (uint32_t s = 0; s < frontier.size(); ++s)
      for (uint32_t j = 0; j < items_[i].size(); ++j) {
        const int64_t cost = frontier[s].cost + items_[i][j].cost;
        if (cost + least_after[i + 1] > max_budget) continue;
        next.push_back({cost, frontier[s].value + items_[i][j].value, s, j});
      }
    std::sort(next.begin(), next.end(), [](const State& a, const State& b) {
      return a.cost != b.cost ? a.cost < b.cost : a.value < b.value;
    });
    // Keep a state only when it does strictly less damage than every cheaper one.
    std::vector<State> kept;
    for (const auto& state : next)
      if (kept.empty() || state.value < kept.back().value) kept.push_back(state);
    if (kept.size() > max_states)
      throw UsageError("the mixed-precision search's Pareto frontier grew past " + std::to_string(max_states) +
                       " plans; give fewer candidate bit-widths");
    frontiers_.push_back(kept);
    frontier = std::move(kept);
  }
  max_budget_ = max_budget;
}

KnapsackSolution MultipleChoiceKnapsack::solve(int64_t budget) const {
  if (budget > max_budget_)
    throw std::invalid_argument("budget " + std::to_string(budget) + " is above the knapsack's maximum " +
                                std::to_string(max_budget_));
  if (budget < min_cost_)
    throw UsageError("no plan fits a budget of " + std::to_string(budget) + ": the cheapest costs " +
                     std::to_string(min_cost_));
  KnapsackSolution solution;
  solution.choices.resize(items_.size());
  if (items_.empty()) return solution;
  const auto& last = frontiers_.back();
  // The frontier's damage falls as its cost rises: the last state within budget is the best.
  const auto it = std::upper_bound(last.begin(), last.end(), budget,
                                   [](int64_t b, const State& state) { return b < state.cost; });
  size_t index = static_cast<size_t>(it - last.begin()) - 1;
  solution.cost = last[index].cost;
  solution.value = last[index].value;
  for (size_t i = items_.size(); i-- > 0;) {
    const auto& state = frontiers_[i][index];
    solution.choices[i] = state.choice;
    index = state.parent;
  }
  return solution;
}

}  // namespace qrobust::mixed_precision
