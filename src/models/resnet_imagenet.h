#pragma once
// ResNet-18/34/50 for ImageNet-sized images, exactly torchvision's (He et al. 2016, ResNet v1.5:
// the stride of a bottleneck is on its 3x3 conv), with the same parameter and buffer names, so
// torchvision state dicts load one to one (see train/torchvision_import.h). Stem: 7x7/2 conv-BN-ReLU
// and 3x3/2 max pooling; four stages of basic (18, 34) or bottleneck (50) blocks with
// projection shortcuts; global average pooling; one linear layer.
#include <torch/torch.h>

#include <vector>

#include "models/classifier.h"
#include "models/resnet_cifar.h"

namespace qrobust::models {

// 1x1 conv-BN-ReLU, 3x3 conv-BN-ReLU (stride), 1x1 conv-BN to 4x the channels, add the shortcut,
// ReLU; a quantization point after each ReLU.
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

struct ResNetImageNetOptions {
  explicit ResNetImageNetOptions(std::vector<int64_t> blocks) : blocks_(std::move(blocks)) {}
  TORCH_ARG(std::vector<int64_t>, blocks);  // blocks per stage
  TORCH_ARG(bool, bottleneck) = false;
  TORCH_ARG(int64_t, width) = 64;  // channels of the stem and the first stage; stages double it
  TORCH_ARG(InputSpec, input);
};

class ResNetImageNetImpl : public ClassifierImpl {
 public:
  ResNetImageNetImpl(std::string architecture, const ResNetImageNetOptions& options);
  torch::Tensor forward(torch::Tensor images) override;

 private:
  QuantPoint input_point_{nullptr}, stem_act_{nullptr}, pooled_point_{nullptr};
  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  std::vector<std::function<torch::Tensor(torch::Tensor)>> blocks_;
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(ResNetImageNet);

}  // namespace qrobust::models
