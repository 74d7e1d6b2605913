#pragma once
// Post-training quantization of a model through its quantization points and layer list:
// activation ranges are observed on calibration images (one set of ranges per calibration
// draw), then any choice of bit-widths is applied through scopes that restore the float model
// when they close: WeightQuantizeScope for the layers' weights, models::QuantizeScope with
// activation_quantizers() for the points. A BitPlan says which elements are quantized at which
// bit-width, so "only conv1 at 4 bits" is a plan like any sweep configuration.
//
// The weight steps of a recipe (quant::QuantOptions: AdaRound, bias correction) run here, in
// forward order, the first time a plan's weights are asked for: layer l is rounded and corrected
// with its input from the network whose earlier layers are already quantized (and corrected) as
// the plan says, activations float. Each layer's result is kept per (bits of layer l and of
// every layer before it, calibration draw), so a sweep learns each bit-width once, plans that
// share a prefix share its layers, and activation bit-widths reuse the weights.
#include <torch/torch.h>

#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "data/datasets.h"
#include "models/classifier.h"
#include "quant/bn_fold.h"
#include "quant/options.h"
#include "quant/quantizer.h"
#include "quant/range_estimator.h"

namespace qrobust::quant {

// Calibration draw `draw` (0, 1, ...) of a run seeded `seed`: an independent seeded sample of
// `samples` training images (all of them if there are fewer), no augmentation, normalized, in
// batches of `batch_size` on `device`. Every image of the sample counts once.
std::vector<torch::Tensor> calibration_batches(const data::DataSplits& splits, int64_t samples, uint64_t seed,
                                               int64_t batch_size, torch::Device device, int64_t draw = 0);

// The weight quantizer `quant` describes at `bits` (per channel along dim 0 or per tensor).
QuantizerSpec weight_spec(const QuantOptions& quant, int bits);
// Its range and grid for `weight` (the weight inference uses, i.e. BN-folded when folding).
AffineParams weight_params(const torch::Tensor& weight, const QuantOptions& quant, int bits);

// Bit-width of layer / point `index` of `count` under the first/last policy.
int policy_bits(FirstLast first_last, size_t index, size_t count, int bits);

// The bit-width of every quantizable layer's weights and of every quantization point, in the
// model's order; kFloatBits leaves an element float.
struct BitPlan {
  std::vector<int> layer_bits;
  std::vector<int> point_bits;
  // Whether some point is quantized; if none is, every calibration draw gives the same model.
  bool quantizes_activations() const;
};

// Every layer of `model` at `weight_bits` and every point at `act_bits`, under the first/last policy.
BitPlan uniform_plan(const models::ClassifierImpl& model, FirstLast first_last, int weight_bits, int act_bits);

// What the float steps of a recipe (BN folding, equalization) hand to its weight steps.
struct RecipeInputs {
  std::vector<OutputStatistics> statistics;  // per layer (analytical bias correction); may be empty
  uint64_t seed = 0;                         // AdaRound's batch order
};

// Seconds the weight steps took so far, and how many layers they learned.
struct RecipeCost {
  double capture_seconds = 0;  // running the network for layer inputs
  double adaround_seconds = 0;
  double bias_correction_seconds = 0;
  int64_t layers = 0;
};

// A layer's weight and bias as a plan computes with them (bias undefined where it has none).
struct LayerWeights {
  torch::Tensor weight;
  torch::Tensor bias;
};

class PostTrainingQuantizer {
 public:
  // `model` should already be BN-folded (and equalized) if the recipe says so; its current
  // weights and biases are the float ones.
  PostTrainingQuantizer(models::ClassifierImpl& model, const QuantOptions& options, const RecipeInputs& recipe = {});

  // Observes every point on `batches` (normalized, on the model's device) and keeps the ranges
  // as a new calibration draw (and the images, when the recipe learns from them); returns its index.
  size_t calibrate(const std::vector<torch::Tensor>& batches);
  size_t draws() const { return observers_.size(); }

  // Every layer at `weight_bits` and every point at `act_bits`, under the first/last policy.
  BitPlan plan(int weight_bits, int act_bits) const;
  // Everything float.
  BitPlan float_plan() const;

  // The quantizer of every point under `point_bits` with the ranges of `draw` (null: float),
  // for a models::QuantizeScope over model.quant_points().
  std::vector<models::QuantPointImpl::Quantizer> activation_quantizers(const std::vector<int>& point_bits, size_t draw);
  // The fake-quantized float weight of `layer` at `bits`, rounded to nearest (the float weight
  // at kFloatBits).
  torch::Tensor quantized_weight(size_t layer, int bits);
  // Every layer's weight and bias under `layer_bits` after the recipe's weight steps, with the
  // calibration images of `draw` where the recipe learns from them.
  std::vector<LayerWeights> layer_weights(const std::vector<int>& layer_bits, size_t draw);
  // Whether layer_weights differ by draw (AdaRound, empirical bias correction).
  bool weights_depend_on_draw() const { return options_.weights_use_calibration(); }
  const RecipeCost& recipe_cost() const { return cost_; }

  // Quantization step δ per output channel of each layer (0 where it stays float), and per
  // point with the ranges of `draw` (0 where it stays float).
  std::vector<torch::Tensor> weight_steps(const std::vector<int>& layer_bits);
  std::vector<double> activation_steps(const std::vector<int>& point_bits, size_t draw);

  // The grid of layer `layer`'s weights at `bits` (2..16), from its float weight; the recipe's
  // weights (AdaRound's included) lie on it.
  const AffineParams& weight_params(size_t layer, int bits);
  // The grid of point `point` at `bits` (2..16) with the ranges of calibration draw `draw`.
  const AffineParams& act_params(size_t point, int bits, size_t draw);

  models::ClassifierImpl& model() { return model_; }

 private:
  QuantizerSpec act_spec(int bits) const;
  LayerWeights recipe_layer(size_t layer, const std::vector<int>& layer_bits, const std::vector<LayerWeights>& earlier,
                            size_t draw);
  // Layer `layer`'s inputs on draw `draw`'s images, with `earlier` as the weights of the layers
  // before it (float when empty) and every activation float.
  torch::Tensor layer_inputs(size_t layer, const std::vector<LayerWeights>& earlier, size_t draw);

  models::ClassifierImpl& model_;
  QuantOptions options_;
  uint64_t recipe_seed_;
  std::vector<torch::Tensor> float_weights_;
  std::vector<torch::Tensor> float_biases_;
  std::vector<torch::Tensor> expected_inputs_;  // per layer, E[input] per input feature, or undefined
  std::vector<std::vector<torch::Tensor>> calibration_images_;  // per draw, when the recipe learns
  std::map<std::pair<std::vector<int>, size_t>, LayerWeights> recipe_cache_;  // (bits of layers 0..l, draw)
  RecipeCost cost_;
  std::vector<std::vector<ActivationObserver>> observers_;  // per draw, per point
  std::map<std::pair<size_t, int>, AffineParams> weight_cache_;
  std::map<std::tuple<size_t, int, size_t>, AffineParams> act_cache_;
};

// A trained float model made ready for post-training quantization, in place: BN-folded when
// `options` fold, equalized when the recipe says so, then calibrated on draws 0 .. draws − 1 of
// a run seeded `seed` (calibration_batches). The sweep, the mixed-precision search and the
// export all start here, so a draw means the same model in each.
struct PreparedQuantizer {
  std::unique_ptr<PostTrainingQuantizer> quantizer;
  double equalize_seconds = 0;
};
PreparedQuantizer prepare_post_training(models::ClassifierImpl& model, const data::DataSplits& splits,
                                        const QuantOptions& options, uint64_t seed, int64_t draws, int64_t batch_size,
                                        torch::Device device);

// While alive, layers[i] computes with weights[i] (for the first weights.size() layers): the
// weight copied into its parameter, the bias set as the tensor its forward reads. Closing
// restores the weights and biases they had.
class LayerWeightsScope {
 public:
  LayerWeightsScope(const std::vector<models::QuantLayer>& layers, const std::vector<LayerWeights>& weights);
  ~LayerWeightsScope();
  LayerWeightsScope(const LayerWeightsScope&) = delete;
  LayerWeightsScope& operator=(const LayerWeightsScope&) = delete;

 private:
  const std::vector<models::QuantLayer>& layers_;
  std::vector<LayerWeights> previous_;
};

// While alive, every layer computes with `quantizer`'s weight and bias for layer_bits[i]
// (calibration draw `draw` where the recipe learns from it).
class WeightQuantizeScope : public LayerWeightsScope {
 public:
  WeightQuantizeScope(PostTrainingQuantizer& quantizer, const std::vector<int>& layer_bits, size_t draw = 0);
};

// Both: the model computes as `plan` quantizes it, with the activation ranges of `draw`.
class QuantizedModelScope {
 public:
  QuantizedModelScope(PostTrainingQuantizer& quantizer, const BitPlan& plan, size_t draw = 0);

 private:
  WeightQuantizeScope weights_;
  models::QuantizeScope activations_;
};

}  // namespace qrobust::quant
