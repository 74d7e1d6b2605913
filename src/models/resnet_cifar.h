#pragma once
// Residual networks for small images (He et al. 2016, "Deep Residual Learning", section 4.2):
// a 3x3 stem, stages of basic blocks (two 3x3 conv + BN), global average pooling, one linear.
// ResNet-20/32/56 use three stages of 16/32/64 channels and option A shortcuts (identity, with
// stride-2 subsampling and zero-padded channels where the shape changes: no extra parameters,
// ResNet-20 has 0.27 M). The ResNet-18 CIFAR variant uses four stages of 64..512 channels and
// option B shortcuts (1x1 conv + BN where the shape changes).
#include <torch/torch.h>

#include <vector>

#include "models/classifier.h"

namespace qrobust::models {

enum class Shortcut {
  kZeroPad,     // option A
  kProjection,  // option B
};

struct ResNetCifarOptions {
  ResNetCifarOptions(std::vector<int64_t> blocks, std::vector<int64_t> channels)
      : blocks_(std::move(blocks)), channels_(std::move(channels)) {}
  TORCH_ARG(std::vector<int64_t>, blocks);    // basic blocks per stage
  TORCH_ARG(std::vector<int64_t>, channels);  // channels per stage
  TORCH_ARG(Shortcut, shortcut) = Shortcut::kZeroPad;
  TORCH_ARG(InputSpec, input);
};

// conv-BN-ReLU, conv-BN, add the shortcut, ReLU; a quantization point after each ReLU.
class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t in_channels, int64_t out_channels, int64_t stride, Shortcut shortcut);
  torch::Tensor forward(torch::Tensor x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential downsample{nullptr};  // option B projection (conv, BN), if the shape changes
  QuantPoint act1{nullptr}, act2{nullptr};

 private:
  int64_t stride_;
  int64_t pad_channels_ = 0;  // option A: zero channels added on each side of the shortcut
};
TORCH_MODULE(BasicBlock);

class ResNetCifarImpl : public ClassifierImpl {
 public:
  ResNetCifarImpl(std::string architecture, const ResNetCifarOptions& options);
  torch::Tensor forward(torch::Tensor images) override;

 private:
  QuantPoint input_point_{nullptr}, stem_act_{nullptr}, pooled_point_{nullptr};
  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  std::vector<BasicBlock> blocks_;
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(ResNetCifar);

}  // namespace qrobust::models
