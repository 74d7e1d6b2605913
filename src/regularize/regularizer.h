#pragma once
// What a training step optimizes beyond cross-entropy. A Regularizer runs the forward pass on a
// batch and leaves ∇(CE + penalty) in the parameters' .grad; the trainer only calls step() and
// the optimizer, and does not know which penalty it runs.
//
//   grad_l1 (the paper)  λ_w Σ_l ‖∂CE/∂W_l‖₁ + λ_a Σ_l ‖∂CE/∂a_l‖₁
//   grad_l2              the same with ℓ2 norms
//   dq_lipschitz         λ Σ_l ‖W_l W_lᵀ − I‖²_F
//   kurtosis             λ Σ_l (Kurt(W_l) − target)²
// The sums run over the model's quantizable layers W_l and its activation quantization points
// a_l (every point whose tensor depends on the weights, i.e. all but the network input). CE is
// the batch mean, so ‖∂CE/∂a_l‖₁ over the batch tensor is the batch mean of the per-sample
// ℓ1 norms ‖∂CE_i/∂a_{l,i}‖₁.
//
// Gradient-norm penalties are differentiated either exactly (double backprop: autograd::grad
// with create_graph) or by finite differences: the penalty's gradient is a Hessian-vector
// product H·sign(g) (ℓ1) or H·g/‖g‖ (ℓ2), approximated by (∇CE(w + h·v) − ∇CE(w))/h with the
// activations shifted along their own directions in the same pass: two ordinary backward
// passes. On ReLU networks the finite difference does not converge to the exact value as h→0
// (it sees the curvature of the kinks the step crosses).
//
// Amortized gradient-norm penalties (docs/benchmarks.md):
//   every: k      the penalized step on steps 0, k, 2k, ... of each epoch with λ scaled by k,
//                 the plain step in between. Summed over k steps, the penalty's gradient is k
//                 times one step's, as with every step, but taken at one point of those k
//                 steps (momentum spreads it over about 1/(1−momentum) steps); the other
//                 steps train on CE alone.
//   subbatch: m   CE and its gradient on the whole batch, the penalty's double backprop on
//                 its first m images, in a second forward pass (batch norm in train mode
//                 normalizes those m images by their own statistics; the running statistics
//                 are left as the first pass set them). The activation term's per-sample
//                 mean is estimated without bias by m samples. The weight term is not: the
//                 ℓ1 norm of a gradient averaged over m images is larger in expectation than
//                 over the batch (its sampling noise adds to the norm), so it penalizes more
//                 than exact at the same λ, and more the smaller m is.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/classifier.h"
#include "regularize/options.h"

namespace qrobust::regularize {

struct StepResult {
  torch::Tensor logits;  // detached
  double cross_entropy = 0;
  double penalty = 0;  // λ-weighted, as added to the loss
};

class Regularizer {
 public:
  virtual ~Regularizer() = default;
  // Forward pass on (images, targets) in the model's current mode, then gradients of
  // CE + penalty accumulated into the parameters' .grad (zero them first).
  virtual StepResult step(models::ClassifierImpl& model, const torch::Tensor& images, const torch::Tensor& targets) = 0;
  // Called before the first step of each epoch (and of a timed run), so that steps counted
  // within an epoch do not depend on where a run was resumed.
  virtual void begin_epoch() {}
};

// Cross-entropy only.
std::unique_ptr<Regularizer> make_plain();
// The penalty `options` describe; a penalty whose λs are all zero is the plain step.
std::unique_ptr<Regularizer> make_regularizer(const RegularizerOptions& options);

// Per-layer ‖∂CE/∂W_l‖₁ and per-point ‖∂CE/∂a_l‖₁ on a batch, in eval mode (the statistics
// post-training quantization will see), leaving parameters and .grad untouched. These are the
// quantities of the paper's Figure 1.
struct GradientNorms {
  std::vector<std::pair<std::string, double>> weight_l1;
  std::vector<std::pair<std::string, double>> activation_l1;
};
GradientNorms measure_gradient_norms(models::ClassifierImpl& model, const torch::Tensor& images,
                                     const torch::Tensor& targets);

}  // namespace qrobust::regularize
