#include "models/classifier.h"

#include "models/layer_ops.h"

namespace qrobust::models {

torch::Tensor QuantLayer::weight() const { return layer->named_parameters(false)["weight"]; }

torch::Tensor& QuantLayer::forward_weight() const {
  if (auto* conv = layer->as<torch::nn::Conv2d>()) return conv->weight;
  if (auto* linear = layer->as<torch::nn::Linear>()) return linear->weight;
  TORCH_CHECK(false, "quant layer ", name, " is neither Conv2d nor Linear");
}

torch::Tensor& QuantLayer::forward_bias() const {
  if (auto* conv = layer->as<torch::nn::Conv2d>()) return conv->bias;
  if (auto* linear = layer->as<torch::nn::Linear>()) return linear->bias;
  TORCH_CHECK(false, "quant layer ", name, " is neither Conv2d nor Linear");
}

torch::Tensor QuantLayer::apply(const torch::Tensor& input, const torch::Tensor& weight) const {
  if (auto* conv = layer->as<torch::nn::Conv2d>()) return convolve(input, weight, *conv);
  if (layer->as<torch::nn::Linear>()) return at::linear(input, weight);
  TORCH_CHECK(false, "quant layer ", name, " is neither Conv2d nor Linear");
}

ClassifierImpl::ClassifierImpl(std::string architecture, InputSpec input)
    : architecture_(std::move(architecture)), input_(input) {}

int64_t ClassifierImpl::parameter_count() const {
  int64_t count = 0;
  for (const auto& p : parameters()) count += p.numel();
  return count;
}

torch::OrderedDict<std::string, torch::Tensor> ClassifierImpl::state() const {
  auto tensors = named_parameters();
  for (const auto& item : named_buffers()) tensors.insert(item.key(), item.value());
  return tensors;
}

void ClassifierImpl::set_memory_format(c10::MemoryFormat format) {
  torch::NoGradGuard no_grad;
  for (auto& parameter : parameters())
    if (parameter.dim() == 4) parameter.set_data(parameter.contiguous(format));
}

void ClassifierImpl::declare_layer(const std::string& name, std::shared_ptr<torch::nn::Module> layer,
                                   std::shared_ptr<torch::nn::Module> norm) {
  layers_.push_back({name, std::move(layer), std::move(norm)});
}

void ClassifierImpl::declare_point(const std::string& name, QuantPoint point) {
  point->set_name(name);
  points_.push_back(std::move(point));
}

void ClassifierImpl::declare_relu_link(ReluLink link) {
  TORCH_CHECK(link.first < layers_.size() && link.second < layers_.size() && link.first < link.second && link.group >= 1,
              "declare_relu_link: bad link ", link.first, " -> ", link.second);
  links_.push_back(link);
}

void ClassifierImpl::declare_block(const std::string& prefix, torch::nn::Module& block) {
  std::string conv_name;
  std::shared_ptr<torch::nn::Module> conv;
  for (const auto& item : block.named_modules("", /*include_self=*/false)) {
    if (item.value()->as<torch::nn::Conv2d>()) {
      if (conv) declare_layer(prefix + conv_name, conv, nullptr);
      conv_name = item.key();
      conv = item.value();
    } else if (item.value()->as<torch::nn::BatchNorm2d>() && conv) {
      declare_layer(prefix + conv_name, conv, item.value());
      conv = nullptr;
    } else if (item.value()->as<QuantPointImpl>()) {
      declare_point(prefix + item.key(), QuantPoint(std::static_pointer_cast<QuantPointImpl>(item.value())));
    }
  }
  if (conv) declare_layer(prefix + conv_name, conv, nullptr);
}

void ClassifierImpl::initialize_weights() {
  torch::NoGradGuard no_grad;
  for (auto& module : modules(false)) {
    if (auto* conv = module->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
      if (conv->bias.defined()) conv->bias.zero_();
    } else if (auto* bn2 = module->as<torch::nn::BatchNorm2d>()) {
      bn2->weight.fill_(1.0);
      bn2->bias.zero_();
    } else if (auto* bn1 = module->as<torch::nn::BatchNorm1d>()) {
      bn1->weight.fill_(1.0);
      bn1->bias.zero_();
    }
  }
}

}  // namespace qrobust::models
