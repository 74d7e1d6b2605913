#include "quant/calibration.h"

#include "data/batches.h"

namespace qrobust::quant {

std::vector<torch::Tensor> calibration_batches(const data::DataSplits& splits, const config::ExperimentConfig& config,
                                               torch::Device device) {
  const int64_t count = std::min(config.quant.calibration_samples, splits.train.size());
  auto generator = at::detail::createCPUGenerator(data::mix_seed(static_cast<uint64_t>(config.seed), 0xCA1));
  const auto picks = torch::randperm(splits.train.size(), generator, torch::kLong).narrow(0, 0, count);
  const data::LabeledImages sample = splits.train.select(picks);
  data::BatchOptions options;
  options.batch_size = config.data.eval_batch_size;
  data::EpochBatches batches(sample, splits.info, options, 0, device);
  std::vector<torch::Tensor> images;
  for (int64_t i = 0; i < batches.size(); ++i) images.push_back(batches.get(i).images);
  return images;
}

QuantizerSpec weight_spec(const config::QuantConfig& quant, int bits) {
  return {bits, quant.weight_symmetric, quant.weight_granularity == "per_channel"};
}

AffineParams weight_params(const torch::Tensor& weight, const config::QuantConfig& quant, int bits) {
  const auto spec = weight_spec(quant, bits);
  const auto range = estimate_range(weight, {quant.weight_estimator, quant.percentile}, spec);
  return affine_params(range.min, range.max, spec);
}

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

QuantizerSpec PostTrainingQuantizer::act_spec(int bits) const { return {bits, config_.act_symmetric, false}; }

const AffineParams& PostTrainingQuantizer::weight_params(size_t layer, int bits) {
  const auto key = std::make_pair(layer, bits);
  auto found = weight_cache_.find(key);
  if (found != weight_cache_.end()) return found->second;
  return weight_cache_.emplace(key, quant::weight_params(float_weights_[layer], config_, bits)).first->second;
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
  quantize_activations(act_bits);
}

void PostTrainingQuantizer::quantize_activations(int act_bits) {
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
