#pragma once
// Post-training quantization of a model through its quantization points and layer list:
// activation ranges are observed on calibration images (one set of ranges per calibration
// draw), then any choice of bit-widths is applied through scopes that restore the float model
// when they close: WeightQuantizeScope for the layers' weights, models::QuantizeScope with
// activation_quantizers() for the points. A BitPlan says which elements are quantized at which
// bit-width, so "only conv1 at 4 bits" is a plan like any sweep configuration.
#include <torch/torch.h>

#include <map>
#include <tuple>
#include <vector>

#include "data/datasets.h"
#include "models/classifier.h"
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

class PostTrainingQuantizer {
 public:
  // `model` should already be BN-folded if folding is wanted; its current weights are the float ones.
  PostTrainingQuantizer(models::ClassifierImpl& model, const QuantOptions& options);

  // Observes every point on `batches` (normalized, on the model's device) and keeps the ranges
  // as a new calibration draw; returns its index.
  size_t calibrate(const std::vector<torch::Tensor>& batches);
  size_t draws() const { return observers_.size(); }

  // Every layer at `weight_bits` and every point at `act_bits`, under the first/last policy.
  BitPlan plan(int weight_bits, int act_bits) const;
  // Everything float.
  BitPlan float_plan() const;

  // The quantizer of every point under `point_bits` with the ranges of `draw` (null: float),
  // for a models::QuantizeScope over model.quant_points().
  std::vector<models::QuantPointImpl::Quantizer> activation_quantizers(const std::vector<int>& point_bits, size_t draw);
  // The fake-quantized float weight of `layer` at `bits` (the float weight at kFloatBits).
  torch::Tensor quantized_weight(size_t layer, int bits);

  // Quantization step δ per output channel of each layer (0 where it stays float), and per
  // point with the ranges of `draw` (0 where it stays float).
  std::vector<torch::Tensor> weight_steps(const std::vector<int>& layer_bits);
  std::vector<double> activation_steps(const std::vector<int>& point_bits, size_t draw);

  models::ClassifierImpl& model() { return model_; }

 private:
  QuantizerSpec act_spec(int bits) const;
  const AffineParams& weight_params(size_t layer, int bits);
  const AffineParams& act_params(size_t point, int bits, size_t draw);

  models::ClassifierImpl& model_;
  QuantOptions options_;
  std::vector<torch::Tensor> float_weights_;
  std::vector<std::vector<ActivationObserver>> observers_;  // per draw, per point
  std::map<std::pair<size_t, int>, AffineParams> weight_cache_;
  std::map<std::tuple<size_t, int, size_t>, AffineParams> act_cache_;
};

// While alive, every layer's weight is `quantizer`'s fake-quantized float weight at
// layer_bits[i]; closing restores the weights the layers had before.
class WeightQuantizeScope {
 public:
  WeightQuantizeScope(PostTrainingQuantizer& quantizer, const std::vector<int>& layer_bits);
  ~WeightQuantizeScope();
  WeightQuantizeScope(const WeightQuantizeScope&) = delete;
  WeightQuantizeScope& operator=(const WeightQuantizeScope&) = delete;

 private:
  models::ClassifierImpl& model_;
  std::vector<torch::Tensor> previous_;
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
