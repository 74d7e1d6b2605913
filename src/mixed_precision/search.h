#pragma once
// `qrobust mixed-precision`: per-layer bit-widths under a budget. On the BN-folded, calibrated
// model (sweep.h's prepare_model, so every PTQ recipe of the config applies):
//   1. each criterion (criteria.h) predicts every element's loss increase at each candidate
//      bit-width, on the val split's first `score_images` images;
//   2. per budget, the plan with the least predicted increase whose size (or bit operations)
//      fits is found exactly (knapsack.h); with bit operations a layer's cost depends on its
//      input point's bits, so a point and the layers that read it are one item;
//   3. each plan, and every uniform configuration of the candidates, is evaluated on the test
//      split with every calibration draw.
// The document holds the scores with each criterion's cost, the uniform points and per budget
// and criterion the chosen plan, its predicted increase, its costs and its accuracy and loss.
#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "data/datasets.h"
#include "mixed_precision/criteria.h"
#include "mixed_precision/knapsack.h"
#include "mixed_precision/options.h"
#include "models/classifier.h"
#include "models/complexity.h"
#include "quant/calibration.h"

namespace qrobust::mixed_precision {

struct SearchRequest {
  int64_t calibration_draws = 1;
  bool progress = true;
  const std::atomic<bool>* stop = nullptr;  // optional; checked before every evaluation (sweep::SweepInterrupted)
};

// The candidate bit-widths of every layer and point under the first/last policy.
struct Candidates {
  std::vector<std::vector<int>> layers;
  std::vector<std::vector<int>> points;
};
Candidates candidates(const MixedPrecisionOptions& options, quant::FirstLast first_last, size_t layers, size_t points);

// A plan's weight size in bits (a float weight counts 32) and its bit operations per image:
// Σ_l MACs_l × weight bits_l × bits of the point layer l reads.
struct PlanCost {
  int64_t size_bits = 0;
  int64_t bit_ops = 0;
};
PlanCost plan_cost(const std::vector<models::LayerCost>& layers, const quant::BitPlan& plan);

// A budget in average bits (options.h) as an absolute cost on `axis`.
int64_t absolute_budget(BudgetAxis axis, double average_bits, const std::vector<models::LayerCost>& layers);
// A cost on `axis` as average bits.
double average_bits(BudgetAxis axis, const PlanCost& cost, const std::vector<models::LayerCost>& layers);

// The exact least-damage plans of one criterion's scores, for any budget up to `max_budget`.
class Allocator {
 public:
  Allocator(const ElementScores& scores, const Candidates& candidates, const std::vector<models::LayerCost>& layers,
            BudgetAxis axis, int64_t max_budget);
  // The plan for `budget` (absolute, on the axis) and its predicted loss increase; a budget no
  // plan fits is a UsageError.
  std::pair<quant::BitPlan, double> plan(int64_t budget) const;

 private:
  // One knapsack item: a point and the layers that read it, each choice a bit-width for all of them.
  struct Item {
    std::vector<size_t> layers;
    size_t point = 0;
    std::vector<std::vector<int>> layer_bits;  // per choice, the bits of `layers`
    std::vector<int> point_bits;               // per choice
  };
  std::vector<Item> items_;
  std::unique_ptr<MultipleChoiceKnapsack> knapsack_;
  size_t layer_count_ = 0, point_count_ = 0;
};

nlohmann::json run_mixed_precision(const config::ExperimentConfig& config, const std::string& checkpoint,
                                   const SearchRequest& request);

// The same for a model already built and loaded (BN-folded and calibrated in place).
nlohmann::json mixed_precision_model(models::ClassifierImpl& model, const data::DataSplits& splits,
                                     const config::ExperimentConfig& config, const SearchRequest& request,
                                     torch::Device device);

// `sweep-bits --plan FILE`: the plan file's accuracy and loss on `split` with each of `draws`
// calibration draws, beside its costs; a bad plan file is a UsageError before any work.
nlohmann::json run_plan(const config::ExperimentConfig& config, const std::string& checkpoint,
                        const std::string& plan_path, data::Split split, int64_t draws);

}  // namespace qrobust::mixed_precision
