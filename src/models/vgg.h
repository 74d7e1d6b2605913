#pragma once
// VGG-style networks with batch norm for small images: 3x3 conv-BN-ReLU units and 2x2 max
// pools, then fully connected layers. Pools use ceil mode so that 28x28 inputs (Fashion-MNIST)
// survive five halvings (28-14-7-4-2-1); for 32x32 inputs this is the usual floor pooling.
//
// vgg_like is the CIFAR-10 net of the paper (as in Louizos et al. 2019, Relaxed Quantization):
// 2x128C3-MP2-2x256C3-MP2-2x512C3-MP2-1024FC-10, each conv and the 1024-unit FC followed by
// BN and ReLU. vgg11_bn / vgg16_bn are Simonyan & Zisserman's configurations A and D with
// BN, ending in one linear layer from 512 features (the common CIFAR adaptation).
#include <torch/torch.h>

#include <vector>

#include "models/classifier.h"

namespace qrobust::models {

struct VggOptions {
  VggOptions(std::vector<int64_t> features, std::vector<int64_t> hidden)
      : features_(std::move(features)), hidden_(std::move(hidden)) {}
  TORCH_ARG(std::vector<int64_t>, features);  // conv output channels in order; 0 = 2x2 max pool
  TORCH_ARG(std::vector<int64_t>, hidden);    // widths of the hidden FC-BN-ReLU layers
  TORCH_ARG(InputSpec, input);
};

class VggImpl : public ClassifierImpl {
 public:
  VggImpl(std::string architecture, const VggOptions& options);
  torch::Tensor forward(torch::Tensor images) override;

 private:
  struct Unit {  // conv-BN-ReLU or linear-BN-ReLU, then a quantization point; or a max pool
    std::shared_ptr<torch::nn::Module> layer;  // null for a max pool
    std::shared_ptr<torch::nn::Module> norm;
    QuantPoint act{nullptr};
  };
  QuantPoint input_point_{nullptr};
  std::vector<Unit> features_;
  std::vector<Unit> classifier_;
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(Vgg);

}  // namespace qrobust::models
