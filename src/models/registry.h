#pragma once
// Models by name, as configs refer to them.
//   resnet<6n+2>    CIFAR ResNet (resnet8, resnet14, resnet20, resnet32, resnet44, resnet56, ...)
//   resnet18_cifar  ResNet-18 adapted to small images
//   resnet18, resnet34, resnet50  torchvision's ImageNet ResNets (same parameter names)
//   vgg_like        the paper's CIFAR-10 VGG-like net
//   vgg11_bn, vgg16_bn
#include <string>
#include <vector>

#include "models/classifier.h"

namespace qrobust::models {

// `width` is the channel count of the first conv (0: the architecture's own); later layers
// scale with it.
Classifier make_model(const std::string& name, const InputSpec& input, int64_t width = 0);

bool is_known_model(const std::string& name);
std::string known_models_text();  // for error messages

}  // namespace qrobust::models
