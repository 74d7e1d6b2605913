#include "quant/bias_correction.h"

#include <cmath>

namespace qrobust::quant {

torch::Tensor relu_normal_mean(const torch::Tensor& mean, const torch::Tensor& std) {
  const auto mu = mean.to(torch::kDouble), sigma = std.to(torch::kDouble);
  const auto z = mu / sigma.clamp_min(1e-300);
  const auto cdf = 0.5 * (1 + torch::erf(z / std::sqrt(2.0)));
  const auto pdf = torch::exp(-0.5 * z * z) / std::sqrt(2 * M_PI);
  const auto out = torch::where(sigma > 0, mu * cdf + sigma * pdf, mu.clamp_min(0));
  return out.to(mean.scalar_type());
}

std::vector<torch::Tensor> expected_inputs(const models::ClassifierImpl& model,
                                           const std::vector<OutputStatistics>& statistics) {
  std::vector<torch::Tensor> out(model.quant_layers().size());
  if (statistics.empty()) return out;
  for (const auto& link : model.relu_links()) {
    const auto& stats = statistics.at(link.first);
    if (link.through_max_pool || !stats.mean.defined()) continue;
    out[link.second] = relu_normal_mean(stats.mean, stats.std).repeat_interleave(link.group);
  }
  return out;
}

torch::Tensor analytical_bias_shift(const torch::Tensor& float_weight, const torch::Tensor& quantized_weight,
                                    const torch::Tensor& expected_input) {
  auto error = (quantized_weight - float_weight).to(torch::kDouble);
  if (error.dim() > 2) error = error.flatten(2).sum(2);
  return -error.matmul(expected_input.to(error.device(), torch::kDouble)).to(float_weight.scalar_type());
}

torch::Tensor empirical_bias_shift(const torch::Tensor& output, const torch::Tensor& target) {
  auto error = (output - target).to(torch::kDouble);
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < error.dim(); ++d) dims.push_back(d);
  return -error.mean(dims).to(output.scalar_type());
}

}  // namespace qrobust::quant
