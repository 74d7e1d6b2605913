#pragma once
// Post-training quantization of a model through its quantization points and layer list:
// activation ranges are observed once (calibration), then any (weight bits, activation bits)
// configuration is applied by quantizing the weights once and installing per-point quantizers.
#include <torch/torch.h>

#include <map>
#include <vector>

#include "config/config.h"
#include "data/datasets.h"
#include "models/classifier.h"
#include "quant/quantizer.h"
#include "quant/range_estimator.h"

namespace qrobust::quant {

// The calibration images: a seeded sample of config.quant.calibration_samples training images,
// no augmentation, normalized, in batches of data.eval_batch_size on `device`.
std::vector<torch::Tensor> calibration_batches(const data::DataSplits& splits, const config::ExperimentConfig& config,
                                               torch::Device device);

// The weight quantizer `quant` describes at `bits` (per channel along dim 0 or per tensor).
QuantizerSpec weight_spec(const config::QuantConfig& quant, int bits);
// Its range and grid for `weight` (the weight inference uses, i.e. BN-folded when folding).
AffineParams weight_params(const torch::Tensor& weight, const config::QuantConfig& quant, int bits);

// Bit-width of layer / point `index` of `count` under the first/last policy.
int policy_bits(const std::string& first_last, size_t index, size_t count, int bits);

class PostTrainingQuantizer {
 public:
  // `model` should already be BN-folded if folding is wanted; its current weights are the float ones.
  PostTrainingQuantizer(models::ClassifierImpl& model, const config::QuantConfig& config);

  // Runs `images` (normalized, on the model's device) through the model observing every point.
  void calibrate(const std::vector<torch::Tensor>& batches);

  // Quantizes the weights (from the float copy) and installs activation quantizers.
  void apply(int weight_bits, int act_bits);
  // Only the activation quantizers (points in kQuantize mode); weights untouched.
  void quantize_activations(int act_bits);
  // Float weights back, quantization points off.
  void restore();

  // Quantization step δ per output channel of each layer at `weight_bits` (per-tensor layers
  // repeat one value), and per point at `act_bits` (0 where the point stays float).
  std::vector<torch::Tensor> weight_steps(int weight_bits);
  std::vector<double> activation_steps(int act_bits);

 private:
  QuantizerSpec act_spec(int bits) const;
  const AffineParams& weight_params(size_t layer, int bits);
  const AffineParams& act_params(size_t point, int bits);

  models::ClassifierImpl& model_;
  config::QuantConfig config_;
  std::vector<torch::Tensor> float_weights_;
  std::vector<ActivationObserver> observers_;
  std::map<std::pair<size_t, int>, AffineParams> weight_cache_, act_cache_;
};

}  // namespace qrobust::quant
