#pragma once
// Convolution, batch norm and ReLU as the models apply them, with gradients that are themselves
// cheap to differentiate. The gradient-norm penalties differentiate every layer's gradient (double
// backprop). LibTorch's own double backward computes one term of a convolution's as a
// transposed convolution on the reference kernel (slow_conv_transpose2d) on CPU, and a
// training-mode batch norm's as about 37 separate element-wise operations. Here every term of a
// convolution's first and second derivative is a forward convolution or a first-order
// convolution backward (oneDNN kernels), and a batch norm's second derivative is written out
// (two fused reductions, five element-wise passes). Values and first-order gradients come from
// the same kernels as torch::conv2d, torch::batch_norm and torch::relu, so plain training is
// unchanged.
#include <torch/torch.h>

#include <functional>
#include <utility>
#include <vector>

namespace qrobust::models {

torch::Tensor conv2d(const torch::Tensor& input, torch::nn::Conv2dImpl& conv);
// The convolution `conv` computes, with `weight` in place of its own and no bias.
torch::Tensor convolve(const torch::Tensor& input, const torch::Tensor& weight, const torch::nn::Conv2dImpl& conv);
// linear.forward(input); here so that LayerInputScope sees the input of linear layers too.
torch::Tensor linear(const torch::Tensor& input, torch::nn::LinearImpl& linear);

// The module's forward, with its running statistics updated the same way. Only training mode
// differs from norm.forward(input), and only in how it is differentiated.
torch::Tensor batch_norm(const torch::Tensor& input, torch::nn::BatchNorm1dImpl& norm);
torch::Tensor batch_norm(const torch::Tensor& input, torch::nn::BatchNorm2dImpl& norm);

// relu(x); its double backward skips LibTorch's explicit zero gradient for x.
torch::Tensor relu(const torch::Tensor& input);

// The remaining operations of the models' forward passes, here so that a trace (models/trace.h)
// sees every one. Each computes what its LibTorch counterpart does.
// out + shortcut, where a residual block joins its branches.
torch::Tensor add_residual(const torch::Tensor& out, const torch::Tensor& shortcut);
torch::Tensor max_pool2d(const torch::Tensor& input, int64_t kernel, int64_t stride, int64_t padding, bool ceil_mode);
// Global average pooling, flattened to N x C.
torch::Tensor global_average_pool(const torch::Tensor& input);
// N x ... to N x features.
torch::Tensor flatten(const torch::Tensor& input);
// The option A shortcut: every stride-th pixel, and pad_channels zero channels on each side.
torch::Tensor subsample_and_pad(const torch::Tensor& input, int64_t stride, int64_t pad_channels);

// While alive, shows the input of every call of conv2d() or linear() on `layer`, on this thread,
// to `observer` (post-training recipes learn a layer from the inputs the network gives it).
// Scopes nest; closing one restores what was there.
class LayerInputScope {
 public:
  LayerInputScope(const torch::nn::Module& layer, std::function<void(const torch::Tensor&)> observer);
  ~LayerInputScope();
  LayerInputScope(const LayerInputScope&) = delete;
  LayerInputScope& operator=(const LayerInputScope&) = delete;

 private:
  size_t depth_;
};

// While alive, models on this thread use LibTorch's own convolution, batch norm and ReLU
// instead, so that `qrobust bench --compare-layer-ops` can time both in one run. Like
// torch::NoGradGuard, it restores the previous mode when it closes.
class LibTorchLayerOpsGuard {
 public:
  LibTorchLayerOpsGuard();
  ~LibTorchLayerOpsGuard();
  LibTorchLayerOpsGuard(const LibTorchLayerOpsGuard&) = delete;
  LibTorchLayerOpsGuard& operator=(const LibTorchLayerOpsGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace qrobust::models
