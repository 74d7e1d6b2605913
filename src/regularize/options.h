#pragma once
// What a training step adds to cross-entropy (regularizer.h): the library's own options;
// config::RegularizerSettings reads and writes them.
#include <torch/arg.h>

#include <cstdint>

#include "util/names.h"

namespace qrobust::regularize {

enum class Penalty { kNone, kGradL1, kGradL2, kDqLipschitz, kKurtosis };
inline constexpr util::Names<Penalty, 5> kPenaltyNames{{{Penalty::kNone, "none"},
                                                         {Penalty::kGradL1, "grad_l1"},
                                                         {Penalty::kGradL2, "grad_l2"},
                                                         {Penalty::kDqLipschitz, "dq_lipschitz"},
                                                         {Penalty::kKurtosis, "kurtosis"}}};

// How a gradient-norm penalty is differentiated.
enum class GradientMethod { kDoubleBackprop, kFiniteDifference };
inline constexpr util::Names<GradientMethod, 2> kGradientMethodNames{
    {{GradientMethod::kDoubleBackprop, "double_backprop"}, {GradientMethod::kFiniteDifference, "finite_difference"}}};

struct RegularizerOptions {
  TORCH_ARG(Penalty, penalty) = Penalty::kNone;
  TORCH_ARG(double, lambda_w) = 0;  // grad_l1 / grad_l2: weight-gradient term
  TORCH_ARG(double, lambda_a) = 0;  // grad_l1 / grad_l2: activation-gradient term
  TORCH_ARG(double, lambda) = 0;    // dq_lipschitz (beta) and kurtosis
  TORCH_ARG(double, kurtosis_target) = 1.8;
  TORCH_ARG(int64_t, start_epoch) = 0;  // penalize from this epoch (0-based) on
  TORCH_ARG(GradientMethod, method) = GradientMethod::kDoubleBackprop;
  // finite_difference step, relative to the mean |weight| of the quantized layers
  TORCH_ARG(double, fd_epsilon) = 1e-3;
  // Amortized (regularizer.h): the penalized step every k-th step with λ scaled by k, and
  // (double_backprop) the penalty on the first m images of a batch (0: the whole batch).
  TORCH_ARG(int64_t, every) = 1;
  TORCH_ARG(int64_t, subbatch) = 0;

 public:
  bool is_gradient_norm() const { return penalty_ == Penalty::kGradL1 || penalty_ == Penalty::kGradL2; }
  bool is_weight_penalty() const { return penalty_ == Penalty::kDqLipschitz || penalty_ == Penalty::kKurtosis; }
};

}  // namespace qrobust::regularize
