#include "models/resnet.h"

#include "models/layer_ops.h"

namespace qrobust::models {

namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

torch::nn::Sequential projection(int64_t in, int64_t out, int64_t stride) {
  return torch::nn::Sequential(conv(in, out, 1, stride), torch::nn::BatchNorm2d(out));
}

torch::Tensor project(torch::nn::Sequential& downsample, const torch::Tensor& x) {
  return batch_norm(conv2d(x, *downsample->ptr(0)->as<torch::nn::Conv2d>()), *downsample->ptr(1)->as<torch::nn::BatchNorm2d>());
}

}  // namespace

BasicBlockImpl::BasicBlockImpl(int64_t in_channels, int64_t out_channels, int64_t stride, Shortcut shortcut)
    : stride_(stride) {
  conv1 = register_module("conv1", conv(in_channels, out_channels, 3, stride));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(out_channels));
  act1 = register_module("act1", QuantPoint());
  conv2 = register_module("conv2", conv(out_channels, out_channels, 3, 1));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(out_channels));
  act2 = register_module("act2", QuantPoint());
  const bool reshapes = stride != 1 || in_channels != out_channels;
  if (reshapes && shortcut == Shortcut::kProjection) {
    downsample = register_module("downsample", projection(in_channels, out_channels, stride));
  } else if (reshapes) {
    TORCH_CHECK((out_channels - in_channels) % 2 == 0, "option A shortcut needs an even channel increase");
    pad_channels_ = (out_channels - in_channels) / 2;
  }
}

torch::Tensor BasicBlockImpl::forward(torch::Tensor x) {
  auto out = act1(models::relu(batch_norm(conv2d(x, *conv1), *bn1)));
  out = batch_norm(conv2d(out, *conv2), *bn2);
  torch::Tensor identity = x;
  if (downsample) {
    identity = project(downsample, x);
  } else if (stride_ != 1 || pad_channels_ > 0) {
    identity = models::subsample_and_pad(x, stride_, pad_channels_);
  }
  return act2(models::relu(models::add_residual(out, identity)));
}

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
    downsample = register_module("downsample", projection(in_channels, out_channels, stride));
}

torch::Tensor BottleneckImpl::forward(torch::Tensor x) {
  auto out = act1(models::relu(batch_norm(conv2d(x, *conv1), *bn1)));
  out = act2(models::relu(batch_norm(conv2d(out, *conv2), *bn2)));
  out = batch_norm(conv2d(out, *conv3), *bn3);
  return act3(models::relu(models::add_residual(out, downsample ? project(downsample, x) : x)));
}

ResNetImpl::ResNetImpl(std::string architecture, const ResNetOptions& options)
    : ClassifierImpl(std::move(architecture), options.input()), stem_(options.stem()) {
  const auto& channels = options.channels();
  TORCH_CHECK(!channels.empty() && channels.size() == options.blocks().size(), "ResNet needs one channel count per stage");
  input_point_ = register_module("input_point", QuantPoint());
  declare_point("input_point", input_point_);
  conv1_ = register_module("conv1", stem_ == Stem::kImageNet ? conv(options.input().channels, channels[0], 7, 2)
                                                             : conv(options.input().channels, channels[0], 3, 1));
  bn1_ = register_module("bn1", torch::nn::BatchNorm2d(channels[0]));
  stem_act_ = register_module("act1", QuantPoint());
  declare_layer("conv1", conv1_.ptr(), bn1_.ptr());
  declare_point("act1", stem_act_);

  int64_t in = channels[0];
  for (size_t stage = 0; stage < channels.size(); ++stage) {
    const std::string stage_name = "layer" + std::to_string(stage + 1);
    auto stage_list = register_module(stage_name, torch::nn::ModuleList());
    for (int64_t i = 0; i < options.blocks()[stage]; ++i) {
      const int64_t stride = (stage > 0 && i == 0) ? 2 : 1;
      torch::nn::AnyModule block;
      if (options.bottleneck()) {
        block = torch::nn::AnyModule(Bottleneck(in, channels[stage], stride));
        in = channels[stage] * BottleneckImpl::kExpansion;
      } else {
        block = torch::nn::AnyModule(BasicBlock(in, channels[stage], stride, options.shortcut()));
        in = channels[stage];
      }
      stage_list->push_back(block.ptr());
      const size_t first_layer = quant_layers().size();
      declare_block(stage_name + "." + std::to_string(i) + ".", *block.ptr());
      // conv1 -> conv2 (-> conv3): each through its batch norm and a ReLU; the block's last
      // convolution ends in the residual addition.
      const size_t chained = options.bottleneck() ? 3 : 2;
      for (size_t k = 0; k + 1 < chained; ++k) declare_relu_link({first_layer + k, first_layer + k + 1});
      blocks_.push_back(std::move(block));
    }
  }
  pooled_point_ = register_module("pooled_point", QuantPoint());
  declare_point("pooled_point", pooled_point_);
  fc_ = register_module("fc", torch::nn::Linear(in, options.input().num_classes));
  declare_layer("fc", fc_.ptr(), nullptr);
  initialize_weights();
}

torch::Tensor ResNetImpl::forward(torch::Tensor images) {
  auto x = stem_act_(models::relu(batch_norm(conv2d(input_point_(images), *conv1_), *bn1_)));
  if (stem_ == Stem::kImageNet) x = models::max_pool2d(x, 3, 2, 1, false);
  for (auto& block : blocks_) x = block.forward(x);
  x = pooled_point_(models::global_average_pool(x));
  return linear(x, *fc_);
}

}  // namespace qrobust::models
