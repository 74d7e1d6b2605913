#include "quant/adaround.h"

#include <cmath>

namespace qrobust::quant {
namespace {

// Scale and zero point shaped to broadcast against the weight (per output channel along dim 0).
std::pair<torch::Tensor, torch::Tensor> broadcast_grid(const torch::Tensor& weight, const AffineParams& params) {
  std::vector<int64_t> shape(static_cast<size_t>(weight.dim()), 1);
  if (params.per_channel) shape[0] = -1;
  const auto scale = params.scale.to(weight.device(), torch::kFloat).view(shape);
  const auto zero = params.zero_point.to(weight.device(), torch::kFloat).view(shape);
  return {scale, zero};
}

// The squared output error summed over outputs (dim 1 and any spatial ones summed per row), mean over rows.
torch::Tensor squared_error(const torch::Tensor& output, const torch::Tensor& target) {
  return (output - target).pow(2).sum(1).mean();
}

}  // namespace

torch::Tensor rectified_sigmoid(const torch::Tensor& v) {
  return (torch::sigmoid(v) * (kAdaRoundZeta - kAdaRoundGamma) + kAdaRoundGamma).clamp(0, 1);
}

torch::Tensor rectified_sigmoid_inverse(const torch::Tensor& fraction) {
  const auto p = (fraction - kAdaRoundGamma) / (kAdaRoundZeta - kAdaRoundGamma);
  return torch::log(p / (1 - p));
}

double adaround_beta(int64_t iteration, int64_t iterations) {
  const double warm = kAdaRoundWarmStart * static_cast<double>(iterations);
  if (static_cast<double>(iteration) <= warm) return kAdaRoundBetaStart;
  const double progress = std::min(1.0, (static_cast<double>(iteration) - warm) / (static_cast<double>(iterations) - warm));
  return kAdaRoundBetaEnd + 0.5 * (kAdaRoundBetaStart - kAdaRoundBetaEnd) * (1 + std::cos(progress * M_PI));
}

double reconstruction_error(const AdaRoundProblem& problem, const torch::Tensor& quantized_weight) {
  torch::NoGradGuard no_grad;
  double total = 0;
  const int64_t rows = problem.inputs.size(0), chunk = 256;
  for (int64_t start = 0; start < rows; start += chunk) {
    const int64_t n = std::min(chunk, rows - start);
    const auto out = problem.apply(problem.inputs.narrow(0, start, n), quantized_weight);
    total += (out - problem.targets.narrow(0, start, n)).pow(2).sum().item<double>();
  }
  return total / static_cast<double>(rows);
}

torch::Tensor adaround(const AdaRoundProblem& problem, const AdaRoundOptions& options, uint64_t seed) {
  const auto weight = problem.weight.detach().to(torch::kFloat);
  const auto [scale, zero] = broadcast_grid(weight, problem.params);
  const double low = static_cast<double>(problem.params.quant_min), high = static_cast<double>(problem.params.quant_max);
  const auto scaled = weight / scale;
  const auto floor = scaled.floor();
  auto v = rectified_sigmoid_inverse(scaled - floor).detach().requires_grad_(true);
  auto quantized = [&](const torch::Tensor& rounding) { return ((floor + zero + rounding).clamp(low, high) - zero) * scale; };

  torch::optim::Adam optimizer({v}, torch::optim::AdamOptions(options.learning_rate()));
  auto generator = at::detail::createCPUGenerator(seed);
  const int64_t rows = problem.inputs.size(0);
  const int64_t batch = std::min(options.batch_size(), rows);
  const auto warm_end = static_cast<int64_t>(kAdaRoundWarmStart * static_cast<double>(options.iterations()));
  for (int64_t it = 0; it < options.iterations(); ++it) {
    const auto picks = torch::randint(rows, {batch}, generator, torch::kLong).to(problem.inputs.device());
    const auto h = rectified_sigmoid(v);
    auto loss = squared_error(problem.apply(problem.inputs.index_select(0, picks), quantized(h)),
                              problem.targets.index_select(0, picks));
    if (it >= warm_end && options.lambda() > 0) {
      const double beta = adaround_beta(it, options.iterations());
      loss = loss + options.lambda() * (1 - (2 * h - 1).abs().pow(beta)).sum();
    }
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
  torch::NoGradGuard no_grad;
  return quantized((v >= 0).to(torch::kFloat)).to(problem.weight.scalar_type());
}

}  // namespace qrobust::quant
