#include "quant/equalize.h"

#include <cmath>

namespace qrobust::quant {
namespace {

// Largest |weight| per output channel.
torch::Tensor output_ranges(const torch::Tensor& weight) { return weight.detach().abs().flatten(1).amax(1); }

// Largest |weight| per input channel of `link`: columns c·group .. (c+1)·group − 1 of a linear
// layer, input channel c of a convolution.
torch::Tensor input_ranges(const torch::Tensor& weight, int64_t channels, int64_t group) {
  const auto w = weight.detach().abs();
  if (w.dim() == 2) return w.view({w.size(0), channels, group}).amax({0, 2});
  return w.transpose(0, 1).flatten(1).amax(1);
}

torch::Tensor link_scales(const models::ClassifierImpl& model, const models::ReluLink& link) {
  const auto& layers = model.quant_layers();
  const auto r1 = output_ranges(layers[link.first].weight());
  const auto r2 = input_ranges(layers[link.second].weight(), r1.size(0), link.group);
  const auto usable = (r1 > 0) & (r2 > 0);
  return torch::where(usable, (r1 / r2.clamp_min(1e-30)).sqrt(), torch::ones_like(r1));
}

// Multiplies the inputs of `weight` matching each first-layer channel by `scales`.
void scale_inputs(torch::Tensor weight, const torch::Tensor& scales, int64_t group) {
  if (weight.dim() == 2) {
    weight.mul_(scales.repeat_interleave(group).view({1, -1}));
  } else {
    std::vector<int64_t> shape(static_cast<size_t>(weight.dim()), 1);
    shape[1] = -1;
    weight.mul_(scales.view(shape));
  }
}

}  // namespace

std::vector<torch::Tensor> equalization_scales(const models::ClassifierImpl& model) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> scales;
  for (const auto& link : model.relu_links()) scales.push_back(link_scales(model, link));
  return scales;
}

EqualizationReport equalize(models::ClassifierImpl& model, std::vector<OutputStatistics>* statistics, double tolerance,
                            int64_t max_passes) {
  torch::NoGradGuard no_grad;
  const auto& layers = model.quant_layers();
  EqualizationReport report;
  report.links = static_cast<int64_t>(model.relu_links().size());
  if (report.links == 0) return report;
  do {
    report.max_log_scale = 0;
    for (const auto& link : model.relu_links()) {
      const auto scales = link_scales(model, link);
      report.max_log_scale = std::max(report.max_log_scale, scales.log().abs().max().item<double>());
      const auto& first = layers[link.first];
      std::vector<int64_t> shape(static_cast<size_t>(first.weight().dim()), 1);
      shape[0] = -1;
      first.weight().div_(scales.view(shape));
      auto& bias = first.forward_bias();
      if (bias.defined()) bias.div_(scales);
      scale_inputs(layers[link.second].weight(), scales, link.group);
      if (statistics && (*statistics)[link.first].mean.defined()) {
        auto& stats = (*statistics)[link.first];
        stats.mean = stats.mean / scales;
        stats.std = stats.std / scales;
      }
    }
    ++report.passes;
  } while (report.max_log_scale > tolerance && report.passes < max_passes);
  return report;
}

}  // namespace qrobust::quant
