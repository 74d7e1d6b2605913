#pragma once
// Bias correction (Nagel et al. 2019, section 4.2). Rounding a layer's weights from W to W̃
// shifts its output on input x by (W̃ − W)·x, whose mean over the data is (W̃ − W)·E[x] per
// output channel; subtracting that from the bias removes the shift.
//   - empirical: the mean output error measured on the calibration images, with the layer's
//     input taken from the quantized network (so it also absorbs the earlier layers' shift);
//   - analytical: E[x] with no data, where x = ReLU(y) and y, the previous layer's batch-norm
//     output, is taken to be normal with the batch norm's mean β and deviation |γ| per channel.
#include <torch/torch.h>

#include <vector>

#include "models/classifier.h"
#include "quant/bn_fold.h"

namespace qrobust::quant {

// E[ReLU(Y)] for Y ~ N(mean, std²), elementwise: μ·Φ(μ/σ) + σ·φ(μ/σ) (ReLU(μ) where σ = 0).
torch::Tensor relu_normal_mean(const torch::Tensor& mean, const torch::Tensor& std);

// Per layer, the expected input per input feature (for a layer that a ReLU link feeds directly,
// not through max pooling, and whose predecessor has statistics); undefined otherwise.
std::vector<torch::Tensor> expected_inputs(const models::ClassifierImpl& model,
                                           const std::vector<OutputStatistics>& statistics);

// −(W̃ − W)·E[x] per output channel (a convolution's kernel summed over its window: the interior
// of the image, where no padding enters).
torch::Tensor analytical_bias_shift(const torch::Tensor& float_weight, const torch::Tensor& quantized_weight,
                                    const torch::Tensor& expected_input);

// −mean(output − target) per output channel (dim 1), over every other dimension.
torch::Tensor empirical_bias_shift(const torch::Tensor& output, const torch::Tensor& target);

}  // namespace qrobust::quant
