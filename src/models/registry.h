#pragma once
// Models by name, as configs refer to them.
//   resnet<6n+2>    CIFAR ResNet (resnet8, resnet14, resnet20, resnet32, resnet44, resnet56, ...)
//   resnet18_cifar  ResNet-18 adapted to small images
//   resnet18, resnet34, resnet50  torchvision's ImageNet ResNets (same parameter names)
//   vgg_like        the paper's CIFAR-10 VGG-like net
//   vgg11_bn, vgg16_bn
#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/classifier.h"

namespace qrobust::models {

// A config's `model:` section.
struct ModelOptions {
  TORCH_ARG(std::string, name) = "resnet20";
  TORCH_ARG(int64_t, width) = 0;  // channels of the first conv; 0: the architecture's own
};

// `width` is the channel count of the first conv (0: the architecture's own); later layers
// scale with it.
Classifier make_model(const std::string& name, const InputSpec& input, int64_t width = 0);

// The model `options` name, built for `input` on `device`, its initial weights drawn as after
// torch::manual_seed(seed). The global generator is left as it was, so building a model does not
// change what later draws from it give.
Classifier build_model(const ModelOptions& options, const InputSpec& input, uint64_t seed, torch::Device device);

bool is_known_model(const std::string& name);
std::string known_models_text();  // for error messages

}  // namespace qrobust::models
