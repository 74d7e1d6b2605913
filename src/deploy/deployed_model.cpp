#include "deploy/deployed_model.h"

#include "util/errors.h"

namespace qrobust::deploy {

namespace {

void check_element(int bits, const std::string& what) {
  if (bits != quant::kFloatBits && (bits < 2 || bits > 8))
    throw UsageError(what + " is at " + std::to_string(bits) +
                     " bits: an export holds 2..8 bits (inside int8 / uint8) or 32 (float)");
}

}  // namespace

void check_deployable(const quant::BitPlan& plan, const models::ClassifierImpl& model) {
  const auto& layers = model.quant_layers();
  const auto& points = model.quant_points();
  TORCH_CHECK(plan.layer_bits.size() == layers.size() && plan.point_bits.size() == points.size(),
              "check_deployable: the plan does not fit the model");
  for (size_t i = 0; i < layers.size(); ++i) check_element(plan.layer_bits[i], "layer " + layers[i].name);
  for (size_t i = 0; i < points.size(); ++i) check_element(plan.point_bits[i], "point " + points[i]->name());
}

DeployedModel deployed_model(quant::PostTrainingQuantizer& quantizer, const quant::BitPlan& plan, size_t draw) {
  auto& model = quantizer.model();
  check_deployable(plan, model);
  torch::NoGradGuard no_grad;
  const auto weights = quantizer.layer_weights(plan.layer_bits, draw);
  DeployedModel deployed;
  const auto& layers = model.quant_layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    DeployedLayer layer{layers[i].name, plan.layer_bits[i], weights[i].weight.detach(), weights[i].bias, std::nullopt};
    if (layer.bias.defined()) layer.bias = layer.bias.detach();
    if (layer.bits != quant::kFloatBits) layer.grid = quantizer.weight_params(i, layer.bits);
    deployed.layers.push_back(std::move(layer));
  }
  const auto& points = model.quant_points();
  for (size_t i = 0; i < points.size(); ++i) {
    DeployedPoint point{points[i]->name(), plan.point_bits[i], std::nullopt};
    if (point.bits != quant::kFloatBits) point.grid = quantizer.act_params(i, point.bits, draw);
    deployed.points.push_back(std::move(point));
  }
  return deployed;
}

torch::Tensor grid_integers(const torch::Tensor& values, const quant::AffineParams& grid) {
  auto shape = std::vector<int64_t>(static_cast<size_t>(values.dim()), 1);
  if (grid.per_channel && values.dim() > 0) shape[0] = -1;
  const auto v = values.detach().cpu().to(torch::kFloat);
  const auto scale = grid.scale.cpu().to(torch::kFloat).reshape(shape);
  const auto zero = grid.zero_point.cpu().to(torch::kInt).reshape(shape);
  const auto steps = (v / scale).round();
  const auto integers = (steps + zero).to(torch::kInt);
  // The grid's own arithmetic, (q − z) · s in float, must give every value back exactly.
  const bool on_grid = torch::equal(((integers - zero).to(torch::kFloat) * scale), v);
  const bool in_range = integers.numel() == 0 ||
                        (integers.min().item<int64_t>() >= grid.quant_min && integers.max().item<int64_t>() <= grid.quant_max);
  if (!on_grid || !in_range) throw RuntimeFailure("a quantized weight is not on its grid: the export would change it");
  return integers;
}

}  // namespace qrobust::deploy
