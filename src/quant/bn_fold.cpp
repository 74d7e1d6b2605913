#include "quant/bn_fold.h"

namespace qrobust::quant {
namespace {

template <class Norm>
bool fold_into(torch::nn::Module& layer, Norm* norm) {
  if (norm == nullptr) return false;
  torch::Tensor* weight = nullptr;
  torch::Tensor* bias = nullptr;
  if (auto* conv = layer.as<torch::nn::Conv2d>()) weight = &conv->weight, bias = &conv->bias;
  else if (auto* linear = layer.as<torch::nn::Linear>()) weight = &linear->weight, bias = &linear->bias;
  TORCH_CHECK(weight != nullptr, "fold_batch_norms: layer is neither conv nor linear");
  const auto gain = norm->weight / (norm->running_var + norm->options.eps()).sqrt();
  std::vector<int64_t> shape(static_cast<size_t>(weight->dim()), 1);
  shape[0] = -1;
  weight->mul_(gain.view(shape));
  const auto old_bias = bias->defined() ? *bias : torch::zeros_like(norm->running_mean);
  // The layer had no bias parameter: the folded bias is a plain tensor the forward picks up.
  *bias = (old_bias - norm->running_mean) * gain + norm->bias;
  norm->weight.fill_(1.0);
  norm->bias.zero_();
  norm->running_mean.zero_();
  norm->running_var.fill_(1.0);
  norm->options.eps(0.0);
  return true;
}

}  // namespace

int fold_batch_norms(models::ClassifierImpl& model) {
  torch::NoGradGuard no_grad;
  int folded = 0;
  for (const auto& layer : model.quant_layers()) {
    if (!layer.norm) continue;
    folded += fold_into(*layer.layer, layer.norm->as<torch::nn::BatchNorm2d>()) ||
              fold_into(*layer.layer, layer.norm->as<torch::nn::BatchNorm1d>());
  }
  return folded;
}

}  // namespace qrobust::quant
