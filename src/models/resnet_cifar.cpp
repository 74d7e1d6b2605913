#include "models/resnet_cifar.h"

#include "models/layer_ops.h"

namespace qrobust::models {
namespace F = torch::nn::functional;

namespace {
torch::nn::Conv2d conv3x3(int64_t in, int64_t out, int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}
}  // namespace

BasicBlockImpl::BasicBlockImpl(int64_t in_channels, int64_t out_channels, int64_t stride, Shortcut shortcut)
    : stride_(stride) {
  conv1 = register_module("conv1", conv3x3(in_channels, out_channels, stride));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(out_channels));
  act1 = register_module("act1", QuantPoint());
  conv2 = register_module("conv2", conv3x3(out_channels, out_channels, 1));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(out_channels));
  act2 = register_module("act2", QuantPoint());
  const bool reshapes = stride != 1 || in_channels != out_channels;
  if (reshapes && shortcut == Shortcut::kProjection) {
    downsample = register_module(
        "downsample",
        torch::nn::Sequential(
            torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, 1).stride(stride).bias(false)),
            torch::nn::BatchNorm2d(out_channels)));
  } else if (reshapes) {
    TORCH_CHECK((out_channels - in_channels) % 2 == 0, "option A shortcut needs an even channel increase");
    pad_channels_ = (out_channels - in_channels) / 2;
  }
}

torch::Tensor BasicBlockImpl::forward(torch::Tensor x) {
  auto out = act1(torch::relu(bn1(conv2d(x, *conv1))));
  out = bn2(conv2d(out, *conv2));
  torch::Tensor identity = x;
  if (downsample) {
    identity = downsample->ptr(1)->as<torch::nn::BatchNorm2d>()->forward(
        conv2d(x, *downsample->ptr(0)->as<torch::nn::Conv2d>()));
  } else if (stride_ != 1 || pad_channels_ > 0) {
    using torch::indexing::Slice;
    identity = x.index({Slice(), Slice(), Slice(torch::indexing::None, torch::indexing::None, stride_),
                        Slice(torch::indexing::None, torch::indexing::None, stride_)});
    identity = F::pad(identity, F::PadFuncOptions({0, 0, 0, 0, pad_channels_, pad_channels_}));
  }
  return act2(torch::relu(out + identity));
}

ResNetCifarImpl::ResNetCifarImpl(std::string architecture, const ResNetCifarOptions& options)
    : ClassifierImpl(std::move(architecture), options.input()) {
  const auto& channels = options.channels();
  TORCH_CHECK(!channels.empty() && channels.size() == options.blocks().size(),
              "ResNet needs one channel count per stage");
  input_point_ = register_module("input_point", QuantPoint());
  declare_point("input_point", input_point_);
  conv1_ = register_module("conv1", conv3x3(options.input().channels, channels[0], 1));
  bn1_ = register_module("bn1", torch::nn::BatchNorm2d(channels[0]));
  stem_act_ = register_module("act1", QuantPoint());
  declare_layer("conv1", conv1_.ptr(), bn1_.ptr());
  declare_point("act1", stem_act_);

  int64_t in = channels[0];
  for (size_t stage = 0; stage < channels.size(); ++stage) {
    auto stage_list = register_module("layer" + std::to_string(stage + 1), torch::nn::ModuleList());
    for (int64_t i = 0; i < options.blocks()[stage]; ++i) {
      const int64_t stride = (stage > 0 && i == 0) ? 2 : 1;
      BasicBlock block(in, channels[stage], stride, options.shortcut());
      stage_list->push_back(block);
      declare_block("layer" + std::to_string(stage + 1) + "." + std::to_string(i) + ".", *block);
      blocks_.push_back(block);
      in = channels[stage];
    }
  }
  pooled_point_ = register_module("pooled_point", QuantPoint());
  declare_point("pooled_point", pooled_point_);
  fc_ = register_module("fc", torch::nn::Linear(in, options.input().num_classes));
  declare_layer("fc", fc_.ptr(), nullptr);
  initialize_weights();
}

torch::Tensor ResNetCifarImpl::forward(torch::Tensor images) {
  auto x = stem_act_(torch::relu(bn1_(conv2d(input_point_(images), *conv1_))));
  for (auto& block : blocks_) x = block->forward(x);
  x = pooled_point_(F::adaptive_avg_pool2d(x, F::AdaptiveAvgPool2dFuncOptions(1)).flatten(1));
  return fc_(x);
}

}  // namespace qrobust::models
