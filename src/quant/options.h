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
};

}  // namespace qrobust::quant
