#include "regularize/penalties.h"

namespace qrobust::regularize {

torch::Tensor norm(const torch::Tensor& g, Norm kind) {
  if (kind == Norm::kL1) return g.abs().sum();
  return g.pow(2).sum().clamp_min(1e-30).sqrt();
}

torch::Tensor lipschitz_penalty(const torch::Tensor& weight) {
  const auto w = weight.flatten(1);
  const bool rows = w.size(0) <= w.size(1);
  const auto gram = rows ? w.mm(w.t()) : w.t().mm(w);
  return (gram - torch::eye(gram.size(0), gram.options())).pow(2).sum();
}

torch::Tensor kurtosis_penalty(const torch::Tensor& weight, double target) {
  const auto w = weight.flatten();
  const auto centered = w - w.mean();
  const auto variance = centered.pow(2).mean();
  const auto kurtosis = centered.pow(4).mean() / variance.pow(2);
  return (kurtosis - target).pow(2);
}

}  // namespace qrobust::regularize
