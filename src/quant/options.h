#pragma once
// How post-training (and quantization-aware) quantization treats a model: the library's own
// options; config::QuantSettings reads and writes them.
#include <torch/arg.h>

#include <cstdint>

#include "util/names.h"

namespace qrobust::quant {

enum class Granularity { kPerTensor, kPerChannel };
inline constexpr util::Names<Granularity, 2> kGranularityNames{
    {{Granularity::kPerTensor, "per_tensor"}, {Granularity::kPerChannel, "per_channel"}}};

// See range_estimator.h.
enum class Estimator { kMinMax, kPercentile, kMse };
inline constexpr util::Names<Estimator, 3> kEstimatorNames{
    {{Estimator::kMinMax, "minmax"}, {Estimator::kPercentile, "percentile"}, {Estimator::kMse, "mse"}}};

// The first and last layer (and their inputs): quantized like the rest, at 8 bits, or float.
enum class FirstLast { kQuantize, kInt8, kFloat };
inline constexpr util::Names<FirstLast, 3> kFirstLastNames{
    {{FirstLast::kQuantize, "quantize"}, {FirstLast::kInt8, "int8"}, {FirstLast::kFloat, "float"}}};

// Bias correction after weight rounding (quant/bias_correction.h): none; empirical, from the mean output
// error on the calibration images; analytical, from the folded batch norms' statistics.
enum class BiasCorrection { kNone, kEmpirical, kAnalytical };
inline constexpr util::Names<BiasCorrection, 3> kBiasCorrectionNames{{{BiasCorrection::kNone, "none"},
                                                                      {BiasCorrection::kEmpirical, "empirical"},
                                                                      {BiasCorrection::kAnalytical, "analytical"}}};

// How weights are rounded onto their grid: to nearest, or learned per layer (quant/adaround.h).
enum class Rounding { kNearest, kAdaRound };
inline constexpr util::Names<Rounding, 2> kRoundingNames{
    {{Rounding::kNearest, "nearest"}, {Rounding::kAdaRound, "adaround"}}};

// AdaRound's optimization of one layer (Nagel et al. 2020, "Up or Down?").
struct AdaRoundOptions {
  TORCH_ARG(int64_t, iterations) = 1000;
  TORCH_ARG(int64_t, batch_size) = 32;      // calibration images per Adam step
  TORCH_ARG(double, lambda) = 0.01;         // weight of the rounding regularizer
  TORCH_ARG(double, learning_rate) = 1e-3;  // Adam on V
};

// A post-training quantization recipe: range setting, then (after BN folding) cross-layer
// equalization, weight rounding and bias correction. The default is plain round-to-nearest.
struct QuantOptions {
  TORCH_ARG(Granularity, weight_granularity) = Granularity::kPerTensor;
  TORCH_ARG(bool, weight_symmetric) = true;
  // Asymmetric activations use an unsigned grid after a ReLU either way.
  TORCH_ARG(bool, act_symmetric) = false;
  TORCH_ARG(Estimator, weight_estimator) = Estimator::kMinMax;
  TORCH_ARG(Estimator, act_estimator) = Estimator::kMinMax;
  TORCH_ARG(double, percentile) = 99.99;
  TORCH_ARG(FirstLast, first_last) = FirstLast::kQuantize;
  TORCH_ARG(bool, bn_fold) = true;
  // Training images (no augmentation, seeded) per calibration draw.
  TORCH_ARG(int64_t, calibration_samples) = 1024;
  // Cross-layer equalization (Nagel et al. 2019) of the BN-folded float model (quant/equalize.h).
  TORCH_ARG(bool, equalize) = false;
  TORCH_ARG(BiasCorrection, bias_correction) = BiasCorrection::kNone;
  TORCH_ARG(Rounding, rounding) = Rounding::kNearest;
  TORCH_ARG(AdaRoundOptions, adaround);

 public:
  // Whether a layer's quantized weights depend on the calibration sample (AdaRound, empirical
  // bias correction): then each calibration draw has its own.
  bool weights_use_calibration() const {
    return rounding_ == Rounding::kAdaRound || bias_correction_ == BiasCorrection::kEmpirical;
  }
  // Whether the weights are anything but each float weight rounded to nearest.
  bool has_weight_recipe() const { return rounding_ != Rounding::kNearest || bias_correction_ != BiasCorrection::kNone; }
};

}  // namespace qrobust::quant
