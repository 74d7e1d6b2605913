#pragma once
// Uniform affine fake quantization through LibTorch's own ops
// (at::fake_quantize_per_tensor_affine / at::fake_quantize_per_channel_affine):
//   q(x) = (clamp(round(x / s) + z, qmin, qmax) − z) · s
// Bit-widths 2..16; 32 means "not quantized".
#include <torch/torch.h>

namespace qrobust::quant {

constexpr int kFloatBits = 32;

struct QuantizerSpec {
  int bits = 8;
  bool symmetric = true;     // zero point 0; otherwise the grid spans [min, max]
  bool per_channel = false;  // one scale per output channel (dim 0)
};

// Scales and zero points of one quantizer, ready for the ATen ops.
struct AffineParams {
  torch::Tensor scale;       // float; one element, or one per channel
  torch::Tensor zero_point;  // int32; same shape as scale
  int64_t quant_min = 0;
  int64_t quant_max = 255;
  bool per_channel = false;
};

// The grid that covers [min, max] (per channel when they have one element per channel):
// symmetric ranges use a signed grid ±(2^(b−1) − 1) around 0, or the unsigned grid
// 0..2^b − 1 when min >= 0 everywhere (activations after a ReLU); asymmetric ranges use
// 0..2^b − 1 with a zero point, after widening the range to include 0. A range that is not
// finite is a RuntimeFailure.
AffineParams affine_params(const torch::Tensor& min, const torch::Tensor& max, const QuantizerSpec& spec);

// Fake-quantizes x (per channel along dim 0). Where no gradient is needed, per-tensor float
// inputs take a faster path that gives the same values bit for bit.
torch::Tensor fake_quantize(const torch::Tensor& x, const AffineParams& params);

// Checks a bit-width: 2..16 or 32; throws UsageError naming `what` otherwise.
void check_bits(int bits, const std::string& what);

}  // namespace qrobust::quant
