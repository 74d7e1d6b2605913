#pragma once
// What a mixed-precision search is asked for: the library's own options; config::MixedPrecisionSettings
// reads and writes them (the config's `mixed_precision:` section).
#include <torch/arg.h>

#include <cstdint>
#include <vector>

#include "util/names.h"

namespace qrobust::mixed_precision {

// How an element's loss increase at a bit-width is predicted (criteria.h).
enum class Criterion { kFirstOrder, kHessianTrace, kMeasured };
inline constexpr util::Names<Criterion, 3> kCriterionNames{{{Criterion::kFirstOrder, "first_order"},
                                                            {Criterion::kHessianTrace, "hessian_trace"},
                                                            {Criterion::kMeasured, "measured"}}};

// What a budget limits: the weights' size in bits, or bit operations (MACs × weight bits ×
// input activation bits).
enum class BudgetAxis { kSize, kBitOps };
inline constexpr util::Names<BudgetAxis, 2> kBudgetAxisNames{{{BudgetAxis::kSize, "size"}, {BudgetAxis::kBitOps, "bops"}}};

struct MixedPrecisionOptions {
  TORCH_ARG(std::vector<Criterion>, criteria) = {Criterion::kFirstOrder, Criterion::kHessianTrace, Criterion::kMeasured};
  // Candidate bit-widths of every layer's weights and of every activation point (the first/last
  // policy still fixes the first and last layer and their inputs where it says so).
  TORCH_ARG(std::vector<int>, weight_bits) = std::vector<int>{8, 6, 5, 4, 3, 2};
  TORCH_ARG(std::vector<int>, act_bits) = std::vector<int>{8};
  TORCH_ARG(BudgetAxis, axis) = BudgetAxis::kSize;
  // In average bits: per weight (size), or of weight bits × activation bits per MAC (bops; w4a8 is 32).
  TORCH_ARG(std::vector<double>, budgets) = std::vector<double>{6, 5, 4, 3.5, 3};
  // Val images the criteria score on (the first this many; all when there are fewer).
  TORCH_ARG(int64_t, score_images) = 2000;
  // Rademacher probes of Hutchinson's trace estimator (hessian_trace).
  TORCH_ARG(int64_t, hutchinson_samples) = 32;
};

}  // namespace qrobust::mixed_precision
