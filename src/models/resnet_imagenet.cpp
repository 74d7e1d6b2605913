#include "models/resnet_imagenet.h"

#include "models/layer_ops.h"

namespace qrobust::models {
namespace F = torch::nn::functional;

namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

torch::Tensor conv_bn(torch::nn::Conv2d& layer, torch::nn::BatchNorm2d& norm, const torch::Tensor& x) {
  return norm(conv2d(x, *layer));
}

}  // namespace

BottleneckImpl::BottleneckImpl(int64_t in_channels, int64_t channels, int64_t stride) {
  const int64_t out_channels = channels * kExpansion;
  conv1 = register_module("conv1", conv(in_channels, channels, 1, 1));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(channels));
  act1 = register_module("act1", QuantPoint());
  conv2 = register_module("conv2", conv(channels, channels, 3, stride));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(channels));
  act2 = register_module("act2", QuantPoint());
  conv3 = register_module("conv3", conv(channels, out_channels, 1, 1));
  bn3 = register_module("bn3", torch::nn::BatchNorm2d(out_channels));
  act3 = register_module("act3", QuantPoint());
  if (stride != 1 || in_channels != out_channels)
    downsample = register_module("downsample", torch::nn::Sequential(conv(in_channels, out_channels, 1, stride),
                                                                     torch::nn::BatchNorm2d(out_channels)));
}

torch::Tensor BottleneckImpl::forward(torch::Tensor x) {
  auto out = act1(torch::relu(conv_bn(conv1, bn1, x)));
  out = act2(torch::relu(conv_bn(conv2, bn2, out)));
  out = conv_bn(conv3, bn3, out);
  torch::Tensor identity = x;
  if (downsample)
    identity = downsample->ptr(1)->as<torch::nn::BatchNorm2d>()->forward(
        conv2d(x, *downsample->ptr(0)->as<torch::nn::Conv2d>()));
  return act3(torch::relu(out + identity));
}

ResNetImageNetImpl::ResNetImageNetImpl(std::string architecture, const ResNetImageNetOptions& options)
    : ClassifierImpl(std::move(architecture), options.input()) {
  TORCH_CHECK(options.blocks().size() == 4, "an ImageNet ResNet has four stages");
  const int64_t width = options.width();
  input_point_ = register_module("input_point", QuantPoint());
  declare_point("input_point", input_point_);
  conv1_ = register_module("conv1", conv(options.input().channels, width, 7, 2));
  bn1_ = register_module("bn1", torch::nn::BatchNorm2d(width));
  stem_act_ = register_module("act1", QuantPoint());
  declare_layer("conv1", conv1_.ptr(), bn1_.ptr());
  declare_point("act1", stem_act_);

  int64_t in = width;
  for (int64_t stage = 0; stage < 4; ++stage) {
    const std::string stage_name = "layer" + std::to_string(stage + 1);
    auto stage_list = register_module(stage_name, torch::nn::ModuleList());
    const int64_t channels = width << stage;
    for (int64_t i = 0; i < options.blocks()[static_cast<size_t>(stage)]; ++i) {
      const int64_t stride = (stage > 0 && i == 0) ? 2 : 1;
      const std::string prefix = stage_name + "." + std::to_string(i) + ".";
      if (options.bottleneck()) {
        Bottleneck block(in, channels, stride);
        stage_list->push_back(block);
        declare_block(prefix, *block);
        blocks_.push_back([block](torch::Tensor x) mutable { return block->forward(std::move(x)); });
        in = channels * BottleneckImpl::kExpansion;
      } else {
        BasicBlock block(in, channels, stride, Shortcut::kProjection);
        stage_list->push_back(block);
        declare_block(prefix, *block);
        blocks_.push_back([block](torch::Tensor x) mutable { return block->forward(std::move(x)); });
        in = channels;
      }
    }
  }
  pooled_point_ = register_module("pooled_point", QuantPoint());
  declare_point("pooled_point", pooled_point_);
  fc_ = register_module("fc", torch::nn::Linear(in, options.input().num_classes));
  declare_layer("fc", fc_.ptr(), nullptr);
  initialize_weights();
}

torch::Tensor ResNetImageNetImpl::forward(torch::Tensor images) {
  auto x = stem_act_(torch::relu(bn1_(conv2d(input_point_(images), *conv1_))));
  x = F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(2).padding(1));
  for (auto& block : blocks_) x = block(x);
  x = pooled_point_(F::adaptive_avg_pool2d(x, F::AdaptiveAvgPool2dFuncOptions(1)).flatten(1));
  return fc_(x);
}

}  // namespace qrobust::models
