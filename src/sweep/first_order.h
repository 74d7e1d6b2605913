#pragma once
// The paper's first-order bound on the loss increase that quantization causes: rounding to a
// grid of step δ moves every coordinate by at most δ/2, so to first order the loss grows by at
// most
//   Σ_l Σ_c (δ_lc/2)·‖∂L/∂W_lc‖₁ + Σ_p (δ_p/2)·‖∂L/∂a_p‖₁,
// with L the float model's mean loss over a split, c the output channels of layer l and p the
// quantization points (their term the mean over samples of ‖∂L_i/∂a_p,i‖₁). Each layer's and
// each point's term is kept apart, so a sensitivity analysis can set one beside the loss
// increase that quantizing that element alone causes.
#include <torch/torch.h>

#include <vector>

#include "data/datasets.h"
#include "models/classifier.h"

namespace qrobust::sweep {

// Gradients of the float model's mean loss over a split, in eval mode.
struct FirstOrder {
  std::vector<torch::Tensor> weight_grads;  // per layer ∂L/∂W_l, CPU
  std::vector<double> activation_l1;        // per point, mean over samples of ‖∂L_i/∂a_p,i‖₁
};

FirstOrder first_order_gradients(models::ClassifierImpl& model, const data::LabeledImages& split,
                                 const data::DatasetInfo& info, int64_t batch_size, torch::Device device);

struct BoundTerms {
  std::vector<double> layers;  // Σ_c (δ_lc/2)·‖∂L/∂W_lc‖₁ per layer
  std::vector<double> points;  // (δ_p/2)·‖∂L/∂a_p‖₁ per point
  double total() const;
};

// The terms for weight steps δ_lc (one per output channel of each layer; 0: float) and point
// steps δ_p (0: float).
BoundTerms first_order_bound(const FirstOrder& gradients, const std::vector<torch::Tensor>& weight_steps,
                             const std::vector<double>& activation_steps);

}  // namespace qrobust::sweep
