#pragma once
// AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization"):
// instead of rounding each weight to nearest, learn per weight whether it rounds down or up, so
// that the layer's output on calibration data stays close to the float layer's:
//   W̃ = s·(clip(⌊W/s⌋ + z + h(V), n, p) − z),  h(V) = clip(sigmoid(V)(ζ − γ) + γ, 0, 1),
// minimizing  mean_batch ‖f(x̂, W̃) − f(x, W)‖²  +  λ·Σ (1 − |2h(V) − 1|^β)
// over V with Adam, where x̂ is the layer's input in the already-quantized network and f(x, W)
// the float layer's output (AdaRound's asymmetric reconstruction). V starts where h(V) equals the
// fractional part W/s − ⌊W/s⌋ (the float weight); the rounding term is off for the first 20 % of
// the iterations, then β anneals from 20 to 2 along a half cosine (AIMET's schedule), which
// pushes every h(V) to 0 or 1. The result rounds h(V) ≥ 1/2 up and the rest down, so every
// weight is ⌊W/s⌋ or ⌈W/s⌉ on the grid.
#include <torch/torch.h>

#include <functional>

#include "quant/options.h"
#include "quant/quantizer.h"

namespace qrobust::quant {

constexpr double kAdaRoundZeta = 1.1;
constexpr double kAdaRoundGamma = -0.1;
constexpr double kAdaRoundWarmStart = 0.2;  // share of iterations without the rounding term
constexpr double kAdaRoundBetaStart = 20;
constexpr double kAdaRoundBetaEnd = 2;

// h(V), the rectified sigmoid.
torch::Tensor rectified_sigmoid(const torch::Tensor& v);
// The V with h(V) = fraction, for fractions in [0, 1).
torch::Tensor rectified_sigmoid_inverse(const torch::Tensor& fraction);
// β at `iteration` of `iterations`: 20 until the warm start ends, then a half cosine to 2.
double adaround_beta(int64_t iteration, int64_t iterations);

// One layer's problem: its float weight and grid, how it maps an input with a given weight to
// its output (without bias), the layer's inputs in the quantized network and the float outputs
// to match (one row per calibration image).
struct AdaRoundProblem {
  torch::Tensor weight;
  AffineParams params;
  std::function<torch::Tensor(const torch::Tensor& input, const torch::Tensor& weight)> apply;
  torch::Tensor inputs;
  torch::Tensor targets;
};

// The learned fake-quantized weight (on the grid of `problem.params`). Batches are drawn with a
// generator seeded `seed`, so the same problem, options and seed give the same weight.
torch::Tensor adaround(const AdaRoundProblem& problem, const AdaRoundOptions& options, uint64_t seed);

// ‖f(x̂, W̃) − f(x, W)‖² summed over outputs, averaged over the rows of `problem`.
double reconstruction_error(const AdaRoundProblem& problem, const torch::Tensor& quantized_weight);

}  // namespace qrobust::quant
