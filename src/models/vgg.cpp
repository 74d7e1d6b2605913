#include "models/vgg.h"

#include <optional>

#include "models/layer_ops.h"

namespace qrobust::models {

VggImpl::VggImpl(std::string architecture, const VggOptions& options)
    : ClassifierImpl(std::move(architecture), options.input()) {
  input_point_ = register_module("input_point", QuantPoint());
  declare_point("input_point", input_point_);
  int64_t channels = options.input().channels, height = options.input().height, width = options.input().width;
  int64_t index = 0;
  // The layer whose ReLU output the next layer reads, and whether a max pool lies between.
  std::optional<size_t> previous;
  bool pooled = false;
  auto link_to_previous = [&](int64_t group) {
    if (previous) declare_relu_link({*previous, quant_layers().size() - 1, group, pooled});
    previous = quant_layers().size() - 1;
    pooled = false;
  };
  for (int64_t out : options.features()) {
    if (out == 0) {
      features_.push_back({});
      height = (height + 1) / 2;
      width = (width + 1) / 2;
      pooled = true;
      continue;
    }
    ++index;
    auto conv = register_module("conv" + std::to_string(index),
                                torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, out, 3).padding(1).bias(false)));
    auto bn = register_module("bn" + std::to_string(index), torch::nn::BatchNorm2d(out));
    auto act = register_module("act" + std::to_string(index), QuantPoint());
    declare_layer("conv" + std::to_string(index), conv, bn);
    link_to_previous(1);
    declare_point("act" + std::to_string(index), act);
    features_.push_back({conv, bn, act});
    channels = out;
  }
  int64_t in = channels * height * width;
  index = 0;
  for (int64_t out : options.hidden()) {
    ++index;
    auto fc = register_module("fc" + std::to_string(index), torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)));
    auto bn = register_module("fc_bn" + std::to_string(index), torch::nn::BatchNorm1d(out));
    auto act = register_module("fc_act" + std::to_string(index), QuantPoint());
    declare_layer("fc" + std::to_string(index), fc, bn);
    link_to_previous(index == 1 ? height * width : 1);
    declare_point("fc_act" + std::to_string(index), act);
    classifier_.push_back({fc, bn, act});
    in = out;
  }
  fc_ = register_module("fc", torch::nn::Linear(in, options.input().num_classes));
  declare_layer("fc", fc_.ptr(), nullptr);
  link_to_previous(options.hidden().empty() ? height * width : 1);
  initialize_weights();
}

torch::Tensor VggImpl::forward(torch::Tensor images) {
  auto x = input_point_(images);
  for (auto& unit : features_) {
    if (!unit.layer) {
      x = models::max_pool2d(x, 2, 2, 0, true);
      continue;
    }
    x = unit.act(models::relu(
        batch_norm(conv2d(x, *unit.layer->as<torch::nn::Conv2d>()), *unit.norm->as<torch::nn::BatchNorm2d>())));
  }
  x = models::flatten(x);
  for (auto& unit : classifier_)
    x = unit.act(models::relu(
        batch_norm(linear(x, *unit.layer->as<torch::nn::Linear>()), *unit.norm->as<torch::nn::BatchNorm1d>())));
  return linear(x, *fc_);
}

}  // namespace qrobust::models
