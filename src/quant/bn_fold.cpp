#include "quant/bn_fold.h"

namespace qrobust::quant {
namespace {

// The norm's (weight, bias, running_mean, running_var, eps) through one interface.
template <class Norm>
Norm* batch_norm(const models::QuantLayer& layer) {
  return layer.norm ? layer.norm->as<Norm>() : nullptr;
}

template <class Norm>
torch::Tensor gain_of(const Norm& norm) {
  return norm.weight / (norm.running_var + norm.options.eps()).sqrt();
}

template <class Norm>
void make_identity(Norm& norm) {
  norm.weight.fill_(1.0);
  norm.bias.zero_();
  norm.running_mean.zero_();
  norm.running_var.fill_(1.0);
  norm.options.eps(0.0);
}

}  // namespace

torch::Tensor fold_gain(const models::QuantLayer& layer) {
  torch::NoGradGuard no_grad;
  torch::Tensor gain;
  if (auto* norm = batch_norm<torch::nn::BatchNorm2dImpl>(layer)) gain = gain_of(*norm);
  else if (auto* norm1d = batch_norm<torch::nn::BatchNorm1dImpl>(layer)) gain = gain_of(*norm1d);
  else return {};
  std::vector<int64_t> shape(static_cast<size_t>(layer.weight().dim()), 1);
  shape[0] = -1;
  return gain.view(shape);
}

std::vector<OutputStatistics> output_statistics(const models::ClassifierImpl& model) {
  torch::NoGradGuard no_grad;
  std::vector<OutputStatistics> out;
  for (const auto& layer : model.quant_layers()) {
    OutputStatistics stats;
    if (auto* norm = batch_norm<torch::nn::BatchNorm2dImpl>(layer)) stats = {norm->bias.clone(), norm->weight.abs()};
    else if (auto* norm1d = batch_norm<torch::nn::BatchNorm1dImpl>(layer)) stats = {norm1d->bias.clone(), norm1d->weight.abs()};
    out.push_back(stats);
  }
  return out;
}

int fold_batch_norms(models::ClassifierImpl& model) {
  torch::NoGradGuard no_grad;
  int folded = 0;
  for (const auto& layer : model.quant_layers()) {
    const auto gain = fold_gain(layer);
    if (!gain.defined()) continue;
    auto* norm2d = batch_norm<torch::nn::BatchNorm2dImpl>(layer);
    auto* norm1d = batch_norm<torch::nn::BatchNorm1dImpl>(layer);
    const auto& mean = norm2d ? norm2d->running_mean : norm1d->running_mean;
    const auto& beta = norm2d ? norm2d->bias : norm1d->bias;
    layer.weight().mul_(gain);
    auto& bias = layer.forward_bias();
    const auto old_bias = bias.defined() ? bias : torch::zeros_like(mean);
    // The layer had no bias parameter: the folded bias is a plain tensor the forward picks up.
    bias = (old_bias - mean) * gain.flatten() + beta;
    if (norm2d) make_identity(*norm2d); else make_identity(*norm1d);
    ++folded;
  }
  return folded;
}

}  // namespace qrobust::quant
