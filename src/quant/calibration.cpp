#include "quant/calibration.h"

#include <algorithm>
#include <chrono>

#include "data/batches.h"
#include "models/layer_ops.h"
#include "quant/adaround.h"
#include "quant/bias_correction.h"
#include "quant/equalize.h"
#include "util/progress.h"

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

PostTrainingQuantizer::PostTrainingQuantizer(models::ClassifierImpl& model, const QuantOptions& options,
                                             const RecipeInputs& recipe)
    : model_(model), options_(options), recipe_seed_(recipe.seed) {
  torch::NoGradGuard no_grad;
  for (const auto& layer : model.quant_layers()) {
    float_weights_.push_back(layer.weight().detach().clone());
    const auto& bias = layer.forward_bias();
    float_biases_.push_back(bias.defined() ? bias.detach().clone() : torch::Tensor());
  }
  if (options_.bias_correction() == BiasCorrection::kAnalytical)
    expected_inputs_ = expected_inputs(model, recipe.statistics);
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
  if (options_.weights_use_calibration()) calibration_images_.push_back(batches);
  return draw;
}

BitPlan uniform_plan(const models::ClassifierImpl& model, FirstLast first_last, int weight_bits, int act_bits) {
  BitPlan plan;
  const size_t layers = model.quant_layers().size(), points = model.quant_points().size();
  for (size_t i = 0; i < layers; ++i) plan.layer_bits.push_back(policy_bits(first_last, i, layers, weight_bits));
  for (size_t i = 0; i < points; ++i) plan.point_bits.push_back(policy_bits(first_last, i, points, act_bits));
  return plan;
}

BitPlan PostTrainingQuantizer::plan(int weight_bits, int act_bits) const {
  return uniform_plan(model_, options_.first_last(), weight_bits, act_bits);
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

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

torch::Tensor PostTrainingQuantizer::layer_inputs(size_t layer, const std::vector<LayerWeights>& earlier, size_t draw) {
  const auto start = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  const auto& layers = model_.quant_layers();
  const LayerWeightsScope weights(layers, earlier);
  const models::QuantizeScope float_activations(model_.quant_points(),
                                                std::vector<models::QuantPointImpl::Quantizer>(model_.quant_points().size()));
  std::vector<torch::Tensor> inputs;
  const models::LayerInputScope capture(*layers[layer].layer, [&inputs](const torch::Tensor& x) { inputs.push_back(x.clone()); });
  model_.eval();
  for (const auto& images : calibration_images_.at(draw)) model_.forward(images);
  cost_.capture_seconds += seconds_since(start);
  return torch::cat(inputs);
}

LayerWeights PostTrainingQuantizer::recipe_layer(size_t layer, const std::vector<int>& layer_bits,
                                                 const std::vector<LayerWeights>& earlier, size_t draw) {
  const int bits = layer_bits[layer];
  const auto& float_weight = float_weights_[layer];
  const auto& float_bias = float_biases_[layer];
  if (bits == kFloatBits) return {float_weight, float_bias};
  LayerWeights out{quantized_weight(layer, bits), float_bias};
  if (!options_.has_weight_recipe()) return out;
  ++cost_.layers;
  const auto& quant_layer = model_.quant_layers()[layer];
  torch::Tensor quantized_inputs, targets;
  if (options_.weights_use_calibration()) {
    torch::NoGradGuard no_grad;
    quantized_inputs = layer_inputs(layer, earlier, draw);
    targets = quant_layer.apply(layer_inputs(layer, {}, draw), float_weight);
  }
  if (options_.rounding() == Rounding::kAdaRound) {
    const auto start = std::chrono::steady_clock::now();
    const AdaRoundProblem problem{float_weight, weight_params(layer, bits),
                                  [&quant_layer](const torch::Tensor& x, const torch::Tensor& w) { return quant_layer.apply(x, w); },
                                  quantized_inputs, targets};
    const uint64_t seed = data::mix_seed(data::mix_seed(recipe_seed_, 0xADA), data::mix_seed(layer, data::mix_seed(bits, draw)));
    out.weight = adaround(problem, options_.adaround(), seed);
    cost_.adaround_seconds += seconds_since(start);
  }
  const auto start = std::chrono::steady_clock::now();
  torch::Tensor shift;
  if (options_.bias_correction() == BiasCorrection::kEmpirical) {
    torch::NoGradGuard no_grad;
    shift = empirical_bias_shift(quant_layer.apply(quantized_inputs, out.weight), targets);
  } else if (options_.bias_correction() == BiasCorrection::kAnalytical && expected_inputs_[layer].defined()) {
    shift = analytical_bias_shift(float_weight, out.weight, expected_inputs_[layer]);
  }
  if (shift.defined()) out.bias = float_bias.defined() ? float_bias + shift : shift;
  cost_.bias_correction_seconds += seconds_since(start);
  return out;
}

std::vector<LayerWeights> PostTrainingQuantizer::layer_weights(const std::vector<int>& layer_bits, size_t draw) {
  const auto& layers = model_.quant_layers();
  TORCH_CHECK(layer_bits.size() == layers.size(), "layer_weights: ", layer_bits.size(), " bit-widths for ",
              layers.size(), " layers");
  const size_t key_draw = weights_depend_on_draw() ? draw : 0;
  if (weights_depend_on_draw() && draw >= calibration_images_.size())
    throw UsageError("calibration draw " + std::to_string(draw) + " does not exist (" +
                     std::to_string(calibration_images_.size()) + " calibrated)");
  std::vector<LayerWeights> out;
  std::vector<int> prefix;
  std::unique_ptr<util::ProgressLine> progress;
  for (size_t i = 0; i < layers.size(); ++i) {
    prefix.push_back(layer_bits[i]);
    auto key = std::make_pair(prefix, key_draw);
    auto found = recipe_cache_.find(key);
    if (found == recipe_cache_.end()) {
      if (!progress && options_.rounding() == Rounding::kAdaRound)
        progress = std::make_unique<util::ProgressLine>("adaround draw " + std::to_string(key_draw),
                                                        static_cast<int64_t>(layers.size()), "layers");
      found = recipe_cache_.emplace(std::move(key), recipe_layer(i, layer_bits, out, key_draw)).first;
      if (progress) progress->update(static_cast<int64_t>(i + 1), layers[i].name);
    }
    out.push_back(found->second);
  }
  if (progress) progress->finish();
  return out;
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

LayerWeightsScope::LayerWeightsScope(const std::vector<models::QuantLayer>& layers,
                                     const std::vector<LayerWeights>& weights)
    : layers_(layers) {
  TORCH_CHECK(weights.size() <= layers.size(), "LayerWeightsScope: ", weights.size(), " weights for ", layers.size(),
              " layers");
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < weights.size(); ++i) {
    auto weight = layers[i].weight();
    previous_.push_back({weight.clone(), layers[i].forward_bias()});
    weight.copy_(weights[i].weight);
    layers[i].forward_bias() = weights[i].bias;
  }
}

LayerWeightsScope::~LayerWeightsScope() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < previous_.size(); ++i) {
    layers_[i].weight().copy_(previous_[i].weight);
    layers_[i].forward_bias() = previous_[i].bias;
  }
}

WeightQuantizeScope::WeightQuantizeScope(PostTrainingQuantizer& quantizer, const std::vector<int>& layer_bits,
                                         size_t draw)
    : LayerWeightsScope(quantizer.model().quant_layers(), quantizer.layer_weights(layer_bits, draw)) {}

QuantizedModelScope::QuantizedModelScope(PostTrainingQuantizer& quantizer, const BitPlan& plan, size_t draw)
    : weights_(quantizer, plan.layer_bits, draw),
      activations_(quantizer.model().quant_points(), quantizer.activation_quantizers(plan.point_bits, draw)) {}

PreparedQuantizer prepare_post_training(models::ClassifierImpl& model, const data::DataSplits& splits,
                                        const QuantOptions& options, uint64_t seed, int64_t draws, int64_t batch_size,
                                        torch::Device device) {
  model.eval();
  PreparedQuantizer prepared;
  RecipeInputs recipe;
  recipe.seed = seed;
  if (options.bn_fold()) {
    recipe.statistics = output_statistics(model);
    fold_batch_norms(model);
  }
  if (options.equalize()) {
    const auto start = std::chrono::steady_clock::now();
    equalize(model, &recipe.statistics);
    prepared.equalize_seconds = seconds_since(start);
  }
  prepared.quantizer = std::make_unique<PostTrainingQuantizer>(model, options, recipe);
  for (int64_t draw = 0; draw < draws; ++draw)
    prepared.quantizer->calibrate(
        calibration_batches(splits, options.calibration_samples(), seed, batch_size, device, draw));
  return prepared;
}

}  // namespace qrobust::quant
