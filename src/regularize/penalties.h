#pragma once
// The penalty terms as differentiable functions of tensors, independent of any training loop.
#include <torch/torch.h>

#include <vector>

namespace qrobust::regularize {

enum class Norm { kL1, kL2 };

// ‖g‖₁ or ‖g‖₂ of one tensor (ℓ2 is clamped away from 0, where its gradient is undefined).
torch::Tensor norm(const torch::Tensor& g, Norm kind);

// Defensive Quantization's Lipschitz penalty (Lin et al. 2019) for one weight: ‖W Wᵀ − I‖²_F
// of the weight reshaped to (out, fan-in), taking the Gram matrix on the smaller side so that
// the identity target is attainable (rows orthonormal when out <= fan-in, columns otherwise).
torch::Tensor lipschitz_penalty(const torch::Tensor& weight);

// KURE (Shkolnik et al. 2020) for one weight: (Kurt(W) − target)², Kurt = E[((w − μ)/σ)⁴].
torch::Tensor kurtosis_penalty(const torch::Tensor& weight, double target);

}  // namespace qrobust::regularize
