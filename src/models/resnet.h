#pragma once
// Residual networks (He et al. 2016, "Deep Residual Learning"), one class for both families:
//   - for small images (section 4.2): a 3x3 stem, then stages of basic blocks. ResNet-20/32/56
//     use three stages of 16/32/64 channels and option A shortcuts (identity, with stride-2
//     subsampling and zero-padded channels where the shape changes: no extra parameters,
//     ResNet-20 has 0.27 M); the CIFAR ResNet-18 uses four stages of 64..512 channels and
//     option B shortcuts (1x1 conv + BN where the shape changes);
//   - for ImageNet: torchvision's ResNet-18/34/50 (v1.5: a bottleneck's stride is on its 3x3
//     conv) with a 7x7/2 stem and 3x3/2 max pooling, option B shortcuts, and torchvision's
//     parameter and buffer names, so that its state dicts load one to one.
// Both end in global average pooling and one linear layer.
#include <torch/torch.h>

#include <vector>

#include "models/classifier.h"

namespace qrobust::models {

enum class Shortcut {
  kZeroPad,     // option A
  kProjection,  // option B
};

enum class Stem {
  kSmallImages,  // 3x3 conv-BN-ReLU
  kImageNet,     // 7x7/2 conv-BN-ReLU, 3x3/2 max pooling
};

struct ResNetOptions {
  ResNetOptions(std::vector<int64_t> blocks, std::vector<int64_t> channels)
      : blocks_(std::move(blocks)), channels_(std::move(channels)) {}
  TORCH_ARG(std::vector<int64_t>, blocks);    // blocks per stage
  TORCH_ARG(std::vector<int64_t>, channels);  // channels per stage (a bottleneck outputs 4x)
  TORCH_ARG(Shortcut, shortcut) = Shortcut::kZeroPad;
  TORCH_ARG(Stem, stem) = Stem::kSmallImages;
  TORCH_ARG(bool, bottleneck) = false;
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

// 1x1 conv-BN-ReLU, 3x3 conv-BN-ReLU (with the stride), 1x1 conv-BN to 4x the channels, add the
// projection shortcut, ReLU; a quantization point after each ReLU.
class BottleneckImpl : public torch::nn::Module {
 public:
  static constexpr int64_t kExpansion = 4;
  BottleneckImpl(int64_t in_channels, int64_t channels, int64_t stride);
  torch::Tensor forward(torch::Tensor x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};
  QuantPoint act1{nullptr}, act2{nullptr}, act3{nullptr};
};
TORCH_MODULE(Bottleneck);

class ResNetImpl : public ClassifierImpl {
 public:
  ResNetImpl(std::string architecture, const ResNetOptions& options);
  torch::Tensor forward(torch::Tensor images) override;

 private:
  Stem stem_;
  QuantPoint input_point_{nullptr}, stem_act_{nullptr}, pooled_point_{nullptr};
  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  std::vector<torch::nn::AnyModule> blocks_;
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(ResNet);

}  // namespace qrobust::models
