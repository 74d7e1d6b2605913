#pragma once
// Range estimators: from observed values to the [min, max] a quantizer covers.
//   minmax      the observed extremes
//   percentile  the p-th and (100 − p)-th percentiles (of |x| when symmetric)
//   mse         the clipping range, among fractions of the min-max range, that minimizes the
//               mean squared quantization error at the requested bit-width
// min-max and percentile ignore the bit-width; mse does not. Per-channel ranges are taken
// along dim 0 (weights); activations are per tensor.
#include <torch/torch.h>

#include <memory>
#include <string>

#include "quant/options.h"
#include "quant/quantizer.h"

namespace qrobust::quant {

struct EstimatorSpec {
  Estimator kind = Estimator::kMinMax;
  double percentile = 99.99;
};

struct Range {
  torch::Tensor min, max;  // one element, or one per channel
};

// The range of `values` (a whole weight tensor, or a sample of activations) for `spec`.
Range estimate_range(const torch::Tensor& values, const EstimatorSpec& estimator, const QuantizerSpec& spec);

// Collects activation statistics over calibration batches: exact extremes, and a bounded
// seeded random sample of values for percentile and mse, uniform over every value observed
// (a value of a small batch is as likely to be kept as one of a large batch).
class ActivationObserver {
 public:
  explicit ActivationObserver(EstimatorSpec estimator, int64_t sample_limit = 1 << 20, uint64_t seed = 0);
  void observe(const torch::Tensor& activation);
  Range range(const QuantizerSpec& spec) const;
  // The values kept for percentile and mse (undefined for minmax).
  const torch::Tensor& sample() const { return sample_; }

 private:
  EstimatorSpec estimator_;
  int64_t sample_limit_;
  at::Generator generator_;
  torch::Tensor min_, max_;
  torch::Tensor sample_;  // flattened, CPU
  torch::Tensor keys_;    // the sample's random keys: the smallest keys seen are kept
  int64_t seen_ = 0;
};

}  // namespace qrobust::quant
