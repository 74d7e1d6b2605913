#include "regularize/penalties.h"

namespace qrobust::regularize {
namespace {

// ‖g‖₁ with a backward of one element-wise pass: differentiating abs().sum() writes sign(g)
// and its product with the incoming gradient, two tensors the size of g (activation gradients
// are as large as the activations). The value is abs().sum(), which LibTorch 1.13 computes
// about 3× faster than linalg_vector_norm(g, 1) here.
class L1Norm : public torch::autograd::Function<L1Norm> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& g) {
    ctx->save_for_backward({g});
    return g.abs().sum();
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    return {at::sign(ctx->get_saved_variables()[0]).mul_(grads[0])};
  }
};

}  // namespace

torch::Tensor norm(const torch::Tensor& g, Norm kind) {
  if (kind == Norm::kL1) return L1Norm::apply(g);
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
