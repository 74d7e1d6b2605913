#pragma once
// Convolution as the models apply it, with a gradient that is itself cheap to differentiate.
// The gradient-norm penalties differentiate every convolution's gradient (double backprop);
// LibTorch's own double backward of a convolution computes one of its terms as a transposed
// convolution on the reference kernel (slow_conv_transpose2d) on CPU. Here every term of the
// first and second derivative is a forward convolution or a first-order convolution backward
// (oneDNN kernels). Values and first-order gradients are those of torch::conv2d (the same
// kernels), so plain training is unchanged.
#include <torch/torch.h>

namespace qrobust::models {

torch::Tensor conv2d(const torch::Tensor& input, torch::nn::Conv2dImpl& conv);

// Process-wide switch (on by default) so that `qrobust bench --compare-layer-ops` can time
// this against LibTorch's own convolution in one run.
void set_fast_conv(bool enabled);

}  // namespace qrobust::models
