#include "quant/calibration.h"

#include <algorithm>

#include "data/batches.h"

namespace qrobust::quant {

std::vector<torch::Tensor> calibration_batches(const data::DataSplits& splits, int64_t samples, uint64_t seed,
                                               int64_t batch_size, torch::Device device, int64_t draw) {
  const int64_t count = std::min(samples, splits.train.size());
  // Draw 0 is the sample every earlier version took; further draws are seeded from it.
  uint64_t sample_seed = data::mix_seed(seed, 0xCA1);
  if (draw > 0) sample_seed = data::mix_seed(sample_seed, static_cast<uint64_t>(draw));
  auto generator = at::detail::createCPUGenerator(sample_seed);
  const auto picks = torch::randperm(splits.train.size(), generator, torch::kLong).narrow(0, 0, count);
  const data::LabeledImages sample = splits.train.select(picks);
  data::BatchOptions options;
  options.batch_size = batch_size;
  data::EpochBatches batches(sample, splits.info, options, 0, device);
  std::vector<torch::Tensor> images;
  for (int64_t i = 0; i < batches.size(); ++i) images.push_back(batches.get(i).images);
  return images;
}

QuantizerSpec weight_spec(const QuantOptions& quant, int bits) {
  return {bits, quant.weight_symmetric(), quant.weight_granularity() == Granularity::kPerChannel};
}

AffineParams weight_params(const torch::Tensor& weight, const QuantOptions& quant, int bits) {
  const auto spec = weight_spec(quant, bits);
  const auto range = estimate_range(weight, {quant.weight_estimator(), quant.percentile()}, spec);
  return affine_params(range.min, range.max, spec);
}

int policy_bits(FirstLast first_last, size_t index, size_t count, int bits) {
  const bool edge = index == 0 || index + 1 == count;
  if (!edge || first_last == FirstLast::kQuantize || bits == kFloatBits) return bits;
  return first_last == FirstLast::kInt8 ? 8 : kFloatBits;
}

PostTrainingQuantizer::PostTrainingQuantizer(models::ClassifierImpl& model, const QuantOptions& options)
    : model_(model), options_(options) {
  for (const auto& layer : model.quant_layers()) float_weights_.push_back(layer.weight().detach().clone());
}

size_t PostTrainingQuantizer::calibrate(const std::vector<torch::Tensor>& batches) {
  const size_t draw = observers_.size();
  const auto& points = model_.quant_points();
  std::vector<ActivationObserver> observers;
  for (size_t i = 0; i < points.size(); ++i)
    observers.emplace_back(EstimatorSpec{options_.act_estimator(), options_.percentile()}, 1 << 20,
                           data::mix_seed(static_cast<uint64_t>(draw), static_cast<uint64_t>(i)));
  {
    models::ObserveScope observe(points, [&observers](size_t i, const torch::Tensor& x) { observers[i].observe(x); });
    torch::NoGradGuard no_grad;
    model_.eval();
    for (const auto& images : batches) model_.forward(images);
  }
  observers_.push_back(std::move(observers));
  return draw;
}

BitPlan PostTrainingQuantizer::plan(int weight_bits, int act_bits) const {
  BitPlan plan;
  const size_t layers = model_.quant_layers().size(), points = model_.quant_points().size();
  for (size_t i = 0; i < layers; ++i) plan.layer_bits.push_back(policy_bits(options_.first_last(), i, layers, weight_bits));
  for (size_t i = 0; i < points; ++i) plan.point_bits.push_back(policy_bits(options_.first_last(), i, points, act_bits));
  return plan;
}

bool BitPlan::quantizes_activations() const {
  return std::any_of(point_bits.begin(), point_bits.end(), [](int bits) { return bits != kFloatBits; });
}

BitPlan PostTrainingQuantizer::float_plan() const { return plan(kFloatBits, kFloatBits); }

QuantizerSpec PostTrainingQuantizer::act_spec(int bits) const { return {bits, options_.act_symmetric(), false}; }

const AffineParams& PostTrainingQuantizer::weight_params(size_t layer, int bits) {
  const auto key = std::make_pair(layer, bits);
  auto found = weight_cache_.find(key);
  if (found != weight_cache_.end()) return found->second;
  return weight_cache_.emplace(key, quant::weight_params(float_weights_[layer], options_, bits)).first->second;
}

const AffineParams& PostTrainingQuantizer::act_params(size_t point, int bits, size_t draw) {
  TORCH_CHECK(draw < observers_.size(), "PostTrainingQuantizer: calibration draw ", draw, " of ", observers_.size());
  const auto key = std::make_tuple(point, bits, draw);
  auto found = act_cache_.find(key);
  if (found != act_cache_.end()) return found->second;
  const auto spec = act_spec(bits);
  const auto range = observers_[draw][point].range(spec);
  return act_cache_.emplace(key, affine_params(range.min, range.max, spec)).first->second;
}

std::vector<models::QuantPointImpl::Quantizer> PostTrainingQuantizer::activation_quantizers(
    const std::vector<int>& point_bits, size_t draw) {
  std::vector<models::QuantPointImpl::Quantizer> quantizers;
  for (size_t i = 0; i < point_bits.size(); ++i) {
    if (point_bits[i] == kFloatBits) {
      quantizers.emplace_back();
    } else {
      const AffineParams params = act_params(i, point_bits[i], draw);
      quantizers.emplace_back([params](const torch::Tensor& x) { return fake_quantize(x, params); });
    }
  }
  return quantizers;
}

torch::Tensor PostTrainingQuantizer::quantized_weight(size_t layer, int bits) {
  if (bits == kFloatBits) return float_weights_[layer];
  return fake_quantize(float_weights_[layer], weight_params(layer, bits));
}

std::vector<torch::Tensor> PostTrainingQuantizer::weight_steps(const std::vector<int>& layer_bits) {
  std::vector<torch::Tensor> steps;
  for (size_t i = 0; i < layer_bits.size(); ++i) {
    const int64_t channels = float_weights_[i].size(0);
    if (layer_bits[i] == kFloatBits) {
      steps.push_back(torch::zeros({channels}));
    } else {
      steps.push_back(weight_params(i, layer_bits[i]).scale.cpu().expand({channels}).contiguous());
    }
  }
  return steps;
}

std::vector<double> PostTrainingQuantizer::activation_steps(const std::vector<int>& point_bits, size_t draw) {
  std::vector<double> steps;
  for (size_t i = 0; i < point_bits.size(); ++i)
    steps.push_back(point_bits[i] == kFloatBits ? 0.0 : act_params(i, point_bits[i], draw).scale.item<double>());
  return steps;
}

WeightQuantizeScope::WeightQuantizeScope(PostTrainingQuantizer& quantizer, const std::vector<int>& layer_bits)
    : model_(quantizer.model()) {
  torch::NoGradGuard no_grad;
  const auto& layers = model_.quant_layers();
  TORCH_CHECK(layer_bits.size() == layers.size(), "WeightQuantizeScope: ", layer_bits.size(), " bit-widths for ",
              layers.size(), " layers");
  // Everything that can throw (a range that is not finite) before the first weight changes.
  std::vector<torch::Tensor> quantized;
  for (size_t i = 0; i < layers.size(); ++i) quantized.push_back(quantizer.quantized_weight(i, layer_bits[i]));
  for (size_t i = 0; i < layers.size(); ++i) {
    auto weight = layers[i].weight();
    previous_.push_back(weight.clone());
    weight.copy_(quantized[i]);
  }
}

WeightQuantizeScope::~WeightQuantizeScope() {
  torch::NoGradGuard no_grad;
  const auto& layers = model_.quant_layers();
  for (size_t i = 0; i < previous_.size(); ++i) layers[i].weight().copy_(previous_[i]);
}

QuantizedModelScope::QuantizedModelScope(PostTrainingQuantizer& quantizer, const BitPlan& plan, size_t draw)
    : weights_(quantizer, plan.layer_bits),
      activations_(quantizer.model().quant_points(), quantizer.activation_quantizers(plan.point_bits, draw)) {}

}  // namespace qrobust::quant
