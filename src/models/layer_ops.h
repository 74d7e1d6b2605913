#pragma once
// Convolution and batch norm as the models apply them, with gradients that are themselves
// cheap to differentiate. The gradient-norm penalties differentiate every layer's gradient
// (double backprop); LibTorch's own double backward is slow on CPU for both layers:
// - a convolution's double backward computes one term as a transposed convolution on the
//   reference kernel (slow_conv_transpose2d); here every term is a forward convolution or a
//   first-order convolution backward (oneDNN kernels);
// - batch norm's double backward (batchnorm_double_backward) runs dozens of full-size
//   element-wise products; here the training-mode gradient is written as
//   dx = A*dy + B*(x - mean) + C with per-channel A, B, C, whose own gradient is a handful of
//   full-size operations.
// Values and first-order gradients are those of torch::conv2d and torch::batch_norm (the
// first-order backward calls the same kernels), so plain training is unchanged.
#include <torch/torch.h>

namespace qrobust::models {

// Which layers use the formulations above (process-wide; both by default). Exists so that
// `qrobust bench --layer-ops` can time them against LibTorch's own in one run.
struct LayerOps {
  bool conv = true;
  bool batch_norm = true;
};
void set_layer_ops(LayerOps ops);
LayerOps layer_ops();

torch::Tensor conv2d(const torch::Tensor& input, torch::nn::Conv2dImpl& conv);

// Batch norm over all dimensions but the channel one (dim 1): BatchNorm1d on (N, C) and
// BatchNorm2d on (N, C, H, W). In eval mode this is the module's own forward.
template <class BatchNormImpl>
torch::Tensor batch_norm(const torch::Tensor& input, BatchNormImpl& norm);

}  // namespace qrobust::models
