#include "quant/calibration.h"

namespace qrobust::quant {

int policy_bits(const std::string& first_last, size_t index, size_t count, int bits) {
  const bool edge = index == 0 || index + 1 == count;
  if (!edge || first_last == "quantize" || bits == kFloatBits) return bits;
  return first_last == "int8" ? 8 : kFloatBits;
}

PostTrainingQuantizer::PostTrainingQuantizer(models::ClassifierImpl& model, const config::QuantConfig& config)
    : model_(model), config_(config) {
  for (const auto& layer : model.quant_layers()) float_weights_.push_back(layer.weight().detach().clone());
  for (size_t i = 0; i < model.quant_points().size(); ++i)
    observers_.emplace_back(EstimatorSpec{config.act_estimator, config.percentile}, 1 << 20, i);
}

void PostTrainingQuantizer::calibrate(const std::vector<torch::Tensor>& batches) {
  const auto& points = model_.quant_points();
  for (size_t i = 0; i < points.size(); ++i) {
    auto point = points[i];  // a non-const handle
    point->set_observer([this, i](const torch::Tensor& x) { observers_[i].observe(x); });
    point->set_mode(models::QuantPointMode::kObserve);
  }
  {
    torch::NoGradGuard no_grad;
    model_.eval();
    for (const auto& images : batches) model_.forward(images);
  }
  model_.set_quant_point_mode(models::QuantPointMode::kOff);
  act_cache_.clear();
}

QuantizerSpec PostTrainingQuantizer::weight_spec(int bits) const {
  return {bits, config_.weight_symmetric, config_.weight_granularity == "per_channel"};
}

QuantizerSpec PostTrainingQuantizer::act_spec(int bits) const { return {bits, config_.act_symmetric, false}; }

const AffineParams& PostTrainingQuantizer::weight_params(size_t layer, int bits) {
  const auto key = std::make_pair(layer, bits);
  auto found = weight_cache_.find(key);
  if (found != weight_cache_.end()) return found->second;
  const auto spec = weight_spec(bits);
  const auto range = estimate_range(float_weights_[layer], {config_.weight_estimator, config_.percentile}, spec);
  return weight_cache_.emplace(key, affine_params(range.min, range.max, spec)).first->second;
}

const AffineParams& PostTrainingQuantizer::act_params(size_t point, int bits) {
  const auto key = std::make_pair(point, bits);
  auto found = act_cache_.find(key);
  if (found != act_cache_.end()) return found->second;
  const auto spec = act_spec(bits);
  const auto range = observers_[point].range(spec);
  return act_cache_.emplace(key, affine_params(range.min, range.max, spec)).first->second;
}

void PostTrainingQuantizer::apply(int weight_bits, int act_bits) {
  torch::NoGradGuard no_grad;
  const auto& layers = model_.quant_layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    const int bits = policy_bits(config_.first_last, i, layers.size(), weight_bits);
    auto weight = layers[i].weight();
    weight.copy_(bits == kFloatBits ? float_weights_[i] : fake_quantize(float_weights_[i], weight_params(i, bits)));
  }
  const auto& points = model_.quant_points();
  for (size_t i = 0; i < points.size(); ++i) {
    const int bits = policy_bits(config_.first_last, i, points.size(), act_bits);
    auto point = points[i];
    if (bits == kFloatBits) {
      point->set_quantizer(nullptr);
    } else {
      const AffineParams params = act_params(i, bits);
      point->set_quantizer([params](const torch::Tensor& x) { return fake_quantize(x, params); });
    }
    point->set_mode(models::QuantPointMode::kQuantize);
  }
}

void PostTrainingQuantizer::restore() {
  torch::NoGradGuard no_grad;
  const auto& layers = model_.quant_layers();
  for (size_t i = 0; i < layers.size(); ++i) layers[i].weight().copy_(float_weights_[i]);
  model_.set_quant_point_mode(models::QuantPointMode::kOff);
}

std::vector<torch::Tensor> PostTrainingQuantizer::weight_steps(int weight_bits) {
  std::vector<torch::Tensor> steps;
  const auto& layers = model_.quant_layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    const int bits = policy_bits(config_.first_last, i, layers.size(), weight_bits);
    const int64_t channels = float_weights_[i].size(0);
    if (bits == kFloatBits) {
      steps.push_back(torch::zeros({channels}));
    } else {
      steps.push_back(weight_params(i, bits).scale.cpu().expand({channels}).contiguous());
    }
  }
  return steps;
}

std::vector<double> PostTrainingQuantizer::activation_steps(int act_bits) {
  std::vector<double> steps;
  const auto& points = model_.quant_points();
  for (size_t i = 0; i < points.size(); ++i) {
    const int bits = policy_bits(config_.first_last, i, points.size(), act_bits);
    steps.push_back(bits == kFloatBits ? 0.0 : act_params(i, bits).scale.item<double>());
  }
  return steps;
}

}  // namespace qrobust::quant
