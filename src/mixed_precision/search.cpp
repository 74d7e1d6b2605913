#include "mixed_precision/search.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "models/registry.h"
#include "quant/bit_plan_file.h"
#include "sweep/sweep.h"
#include "util/errors.h"
#include "util/progress.h"
#include "util/provenance.h"

namespace qrobust::mixed_precision {
namespace {

std::vector<int> policy_candidates(const std::vector<int>& bits, quant::FirstLast first_last, size_t index, size_t count) {
  std::vector<int> out;
  for (const int b : bits) {
    const int applied = quant::policy_bits(first_last, index, count, b);
    if (std::find(out.begin(), out.end(), applied) == out.end()) out.push_back(applied);
  }
  return out;
}

int64_t total_weights(const std::vector<models::LayerCost>& layers) {
  int64_t n = 0;
  for (const auto& layer : layers) n += layer.weights;
  return n;
}

int64_t total_macs(const std::vector<models::LayerCost>& layers) {
  int64_t n = 0;
  for (const auto& layer : layers) n += layer.macs;
  return n;
}

int64_t axis_cost(BudgetAxis axis, const PlanCost& cost) { return axis == BudgetAxis::kSize ? cost.size_bits : cost.bit_ops; }

// The plan every element takes at its cheapest candidate.
quant::BitPlan cheapest_plan(const Candidates& candidates) {
  quant::BitPlan plan;
  for (const auto& c : candidates.layers) plan.layer_bits.push_back(*std::min_element(c.begin(), c.end()));
  for (const auto& c : candidates.points) plan.point_bits.push_back(*std::min_element(c.begin(), c.end()));
  return plan;
}

nlohmann::json scores_json(const ElementScores& scores, const models::ClassifierImpl& model) {
  auto element_json = [](const std::string& name, const std::map<int, double>& values) {
    nlohmann::json bits = nlohmann::json::object();
    for (const auto& [b, v] : values) bits[std::to_string(b)] = v;
    return nlohmann::json{{"name", name}, {"increase", bits}};
  };
  nlohmann::json layers = nlohmann::json::array(), points = nlohmann::json::array();
  for (size_t l = 0; l < scores.layers.size(); ++l) layers.push_back(element_json(model.quant_layers()[l].name, scores.layers[l]));
  for (size_t p = 0; p < scores.points.size(); ++p) points.push_back(element_json(model.quant_points()[p]->name(), scores.points[p]));
  return {{"layers", layers}, {"points", points}};
}

nlohmann::json cost_json(BudgetAxis axis, const PlanCost& cost, const std::vector<models::LayerCost>& layers) {
  return {{"size_bits", cost.size_bits},
          {"bit_ops", cost.bit_ops},
          {"average_weight_bits", average_bits(BudgetAxis::kSize, cost, layers)},
          {"average_bit_ops", average_bits(BudgetAxis::kBitOps, cost, layers)},
          {"average", average_bits(axis, cost, layers)}};
}

}  // namespace

Candidates candidates(const MixedPrecisionOptions& options, quant::FirstLast first_last, size_t layers, size_t points) {
  Candidates out;
  for (size_t l = 0; l < layers; ++l) out.layers.push_back(policy_candidates(options.weight_bits(), first_last, l, layers));
  for (size_t p = 0; p < points; ++p) out.points.push_back(policy_candidates(options.act_bits(), first_last, p, points));
  return out;
}

PlanCost plan_cost(const std::vector<models::LayerCost>& layers, const quant::BitPlan& plan) {
  PlanCost cost;
  for (size_t l = 0; l < layers.size(); ++l) {
    cost.size_bits += layers[l].weights * plan.layer_bits[l];
    cost.bit_ops += layers[l].macs * plan.layer_bits[l] * plan.point_bits[layers[l].input_point];
  }
  return cost;
}

int64_t absolute_budget(BudgetAxis axis, double average, const std::vector<models::LayerCost>& layers) {
  const auto units = axis == BudgetAxis::kSize ? total_weights(layers) : total_macs(layers);
  return static_cast<int64_t>(std::floor(average * static_cast<double>(units) + 1e-6));
}

double average_bits(BudgetAxis axis, const PlanCost& cost, const std::vector<models::LayerCost>& layers) {
  return axis == BudgetAxis::kSize ? static_cast<double>(cost.size_bits) / static_cast<double>(total_weights(layers))
                                   : static_cast<double>(cost.bit_ops) / static_cast<double>(total_macs(layers));
}

Allocator::Allocator(const ElementScores& scores, const Candidates& candidates,
                     const std::vector<models::LayerCost>& layers, BudgetAxis axis, int64_t max_budget)
    : layer_count_(candidates.layers.size()), point_count_(candidates.points.size()) {
  constexpr size_t kMaxChoices = 200'000;
  std::vector<std::vector<Choice>> choices;
  for (size_t p = 0; p < point_count_; ++p) {
    Item item;
    item.point = p;
    for (size_t l = 0; l < layer_count_; ++l)
      if (layers[l].input_point == p) item.layers.push_back(l);
    // Every combination of the point's bits and its layers' bits.
    std::vector<Choice> item_choices;
    for (const int a : candidates.points[p]) {
      std::vector<size_t> index(item.layers.size(), 0);
      while (true) {
        Choice choice{0, scores.points[p].at(a)};
        std::vector<int> bits;
        for (size_t k = 0; k < item.layers.size(); ++k) {
          const size_t l = item.layers[k];
          const int w = candidates.layers[l][index[k]];
          bits.push_back(w);
          choice.cost += axis == BudgetAxis::kSize ? layers[l].weights * w : layers[l].macs * w * a;
          choice.value += scores.layers[l].at(w);
        }
        item.layer_bits.push_back(bits);
        item.point_bits.push_back(a);
        item_choices.push_back(choice);
        if (item_choices.size() > kMaxChoices)
          throw UsageError("mixed precision: too many candidate combinations for the layers reading " +
                           std::to_string(p) + "; give fewer candidate bit-widths");
        size_t k = 0;
        while (k < index.size() && ++index[k] == candidates.layers[item.layers[k]].size()) index[k++] = 0;
        if (k == index.size()) break;
      }
    }
    items_.push_back(std::move(item));
    choices.push_back(std::move(item_choices));
  }
  knapsack_ = std::make_unique<MultipleChoiceKnapsack>(std::move(choices), max_budget);
}

std::pair<quant::BitPlan, double> Allocator::plan(int64_t budget) const {
  const auto solution = knapsack_->solve(budget);
  quant::BitPlan plan;
  plan.layer_bits.assign(layer_count_, quant::kFloatBits);
  plan.point_bits.assign(point_count_, quant::kFloatBits);
  for (size_t i = 0; i < items_.size(); ++i) {
    const auto& item = items_[i];
    const size_t c = solution.choices[i];
    plan.point_bits[item.point] = item.point_bits[c];
    for (size_t k = 0; k < item.layers.size(); ++k) plan.layer_bits[item.layers[k]] = item.layer_bits[c][k];
  }
  return {plan, solution.value};
}

nlohmann::json mixed_precision_model(models::ClassifierImpl& model, const data::DataSplits& splits,
                                     const config::ExperimentConfig& config, const SearchRequest& request,
                                     torch::Device device) {
  const auto& options = config.mixed_precision;
  if (splits.val.size() == 0)
    throw UsageError("mixed precision scores elements on the val split, and it is empty: set data.val_size");
  const auto layers = models::layer_costs(model);
  const auto candidate_bits = candidates(options, config.quant.first_last(), model.quant_layers().size(),
                                         model.quant_points().size());
  // A budget no plan fits fails before any work.
  const auto cheapest = plan_cost(layers, cheapest_plan(candidate_bits));
  for (const double budget : options.budgets())
    if (absolute_budget(options.axis(), budget, layers) < axis_cost(options.axis(), cheapest))
      throw UsageError("mixed_precision.budgets: no plan fits " + config::number_text(budget) +
                       " average bits; the cheapest candidates give " +
                       config::number_text(average_bits(options.axis(), cheapest, layers)));

  const auto start = std::chrono::steady_clock::now();
  auto prepared = sweep::prepare_model(model, splits, config, data::Split::kTest, request.calibration_draws, device);
  auto& quantizer = *prepared.quantizer;
  const int64_t batch = config.data.eval_batch_size;
  const auto scored = splits.val.select(torch::arange(std::min(options.score_images(), splits.val.size())));
  const ScoringInputs inputs{&quantizer, &scored, &splits.info, batch, device, static_cast<uint64_t>(config.seed)};
  const bool with_top5 = splits.info.num_classes >= 100;
  auto check_stop = [&](const std::string& what) {
    if (request.stop && request.stop->load()) throw sweep::SweepInterrupted("interrupted before " + what + " of the mixed-precision search");
  };

  nlohmann::json criteria = nlohmann::json::array();
  std::vector<ElementScores> all_scores;
  for (const auto criterion : options.criteria()) {
    const std::string name = util::name_of(criterion, kCriterionNames);
    check_stop("scoring with " + name);
    std::optional<util::ProgressLine> progress;  // its total is known at the first step
    auto scores = score_elements(criterion, inputs, candidate_bits.layers, candidate_bits.points,
                                 options.hutchinson_samples(), [&](int64_t done, int64_t total) {
                                   if (!request.progress) return;
                                   if (!progress) progress.emplace("scoring with " + name, total, "steps");
                                   progress->update(done);
                                 });
    if (progress) progress->finish();
    spdlog::info("scored with {} in {:.1f} s ({} passes over {} val images)", name, scores.seconds, scores.passes,
                 scored.size());
    criteria.push_back({{"criterion", name}, {"seconds", scores.seconds}, {"passes", scores.passes},
                        {"scores", scores_json(scores, model)}});
    all_scores.push_back(std::move(scores));
  }

  const size_t evaluations = options.weight_bits().size() * options.act_bits().size() +
                             options.criteria().size() * options.budgets().size();
  util::ProgressLine progress("mixed precision", static_cast<int64_t>(evaluations), "plans");
  size_t done = 0;
  auto evaluate = [&](const quant::BitPlan& plan, const std::string& label) {
    check_stop(label);
    auto row = sweep::plan_row(prepared, splits, batch, plan, device, with_top5);
    row.update(cost_json(options.axis(), plan_cost(layers, plan), layers));
    if (request.progress) progress.update(static_cast<int64_t>(++done), label);
    return row;
  };
  nlohmann::json uniform = nlohmann::json::array();
  for (const int w : options.weight_bits())
    for (const int a : options.act_bits()) {
      auto row = evaluate(quantizer.plan(w, a), "uniform w" + std::to_string(w) + "a" + std::to_string(a));
      row["weight_bits"] = w;
      row["act_bits"] = a;
      uniform.push_back(std::move(row));
    }
  const double max_average = *std::max_element(options.budgets().begin(), options.budgets().end());
  const int64_t max_budget = absolute_budget(options.axis(), max_average, layers);
  nlohmann::json plans = nlohmann::json::array();
  for (size_t c = 0; c < options.criteria().size(); ++c) {
    const std::string name = util::name_of(options.criteria()[c], kCriterionNames);
    const Allocator allocator(all_scores[c], candidate_bits, layers, options.axis(), max_budget);
    for (const double budget : options.budgets()) {
      const auto [plan, predicted] = allocator.plan(absolute_budget(options.axis(), budget, layers));
      auto row = evaluate(plan, name + " at " + config::number_text(budget));
      row["criterion"] = name;
      row["budget"] = budget;
      row["predicted_increase"] = predicted;
      row["plan"] = quant::bit_plan_json(plan, model, {{"criterion", name},
                                                       {"axis", util::name_of(options.axis(), kBudgetAxisNames)},
                                                       {"budget", budget}});
      plans.push_back(std::move(row));
    }
  }
  if (request.progress) progress.finish();

  auto header = sweep::settings_header(config, splits, data::Split::kTest);
  header["calibration_draws"] = request.calibration_draws;
  header["recipe"] = config.quant.recipe();
  header["recipe_cost"] = sweep::recipe_cost_json(prepared);
  header["mixed_precision"] = config.mixed_precision.to_json();
  header["scored_split"] = "val";
  header["scored_images"] = scored.size();
  header["weights"] = total_weights(layers);
  header["macs_per_image"] = total_macs(layers);
  header["search_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  header["git_sha"] = util::git_sha();
  header["libtorch"] = util::libtorch_version();
  return {{"header", header},
          {"fp32", {{"accuracy", prepared.reference.accuracy}, {"loss", prepared.reference.loss}}},
          {"criteria", criteria},
          {"uniform", uniform},
          {"plans", plans}};
}

nlohmann::json run_mixed_precision(const config::ExperimentConfig& config, const std::string& checkpoint,
                                   const SearchRequest& request) {
  if (request.calibration_draws < 1) throw UsageError("--draws must be positive");
  return sweep::analyse_checkpoint(config, checkpoint, [&](models::ClassifierImpl& model, const data::DataSplits& splits,
                                                           torch::Device device) {
    return mixed_precision_model(model, splits, config, request, device);
  });
}

nlohmann::json run_plan(const config::ExperimentConfig& config, const std::string& checkpoint,
                        const std::string& plan_path, data::Split split, int64_t draws) {
  if (draws < 1) throw UsageError("--draws must be positive");
  {  // A bad plan file fails before the checkpoint and data are read.
    const auto probe = models::build_model(config.model, data::dataset_info(config.data).input(), 0, torch::kCPU);
    quant::read_bit_plan(plan_path, *probe);
  }
  return sweep::analyse_checkpoint(config, checkpoint, [&](models::ClassifierImpl& model, const data::DataSplits& splits,
                                                           torch::Device device) {
    const auto plan = quant::read_bit_plan(plan_path, model);
    const auto layers = models::layer_costs(model);
    auto prepared = sweep::prepare_model(model, splits, config, split, draws, device);
    auto row = sweep::plan_row(prepared, splits, config.data.eval_batch_size, plan, device, splits.info.num_classes >= 100);
    row.update(cost_json(BudgetAxis::kSize, plan_cost(layers, plan), layers));
    row.erase("average");
    row["plan"] = quant::bit_plan_json(plan, model);
    auto header = sweep::settings_header(config, splits, split);
    header["calibration_draws"] = draws;
    header["recipe"] = config.quant.recipe();
    header["recipe_cost"] = sweep::recipe_cost_json(prepared);
    header["plan_file"] = plan_path;
    header["git_sha"] = util::git_sha();
    header["libtorch"] = util::libtorch_version();
    return nlohmann::json{{"header", header},
                          {"fp32", {{"accuracy", prepared.reference.accuracy}, {"loss", prepared.reference.loss}}},
                          {"plan", row}};
  });
}

}  // namespace qrobust::mixed_precision
