#include "quant/quantizer.h"

#include "util/errors.h"

namespace qrobust::quant {

void check_bits(int bits, const std::string& what) {
  if ((bits < 2 || bits > 16) && bits != kFloatBits)
    throw UsageError(what + ": bit-width " + std::to_string(bits) + " is outside 2..16 (or 32 for float)");
}

AffineParams affine_params(const torch::Tensor& min, const torch::Tensor& max, const QuantizerSpec& spec) {
  check_bits(spec.bits, "quantizer");
  TORCH_CHECK(spec.bits != kFloatBits, "affine_params: 32 bits means no quantizer");
  AffineParams params;
  params.per_channel = spec.per_channel;
  const auto lo = min.to(torch::kFloat).detach(), hi = max.to(torch::kFloat).detach();
  if (!(torch::isfinite(lo).all().item<bool>() && torch::isfinite(hi).all().item<bool>()))
    throw RuntimeFailure("quantizer range is not finite: the weights or activations hold NaN or infinity");
  const int64_t levels = (int64_t{1} << spec.bits) - 1;
  if (spec.symmetric) {
    const auto magnitude = torch::maximum(lo.abs(), hi.abs());
    const bool is_unsigned = lo.min().item<float>() >= 0;
    params.quant_min = is_unsigned ? 0 : -(levels / 2);
    params.quant_max = is_unsigned ? levels : levels / 2;
    params.scale = (magnitude / static_cast<double>(params.quant_max)).clamp_min(1e-12);
    params.zero_point = torch::zeros_like(params.scale, torch::kInt);
  } else {
    const auto low = lo.clamp_max(0), high = hi.clamp_min(0);
    params.quant_min = 0;
    params.quant_max = levels;
    params.scale = ((high - low) / static_cast<double>(levels)).clamp_min(1e-12);
    params.zero_point = (-low / params.scale).round().clamp(0, static_cast<double>(levels)).to(torch::kInt);
  }
  return params;
}

torch::Tensor fake_quantize(const torch::Tensor& x, const AffineParams& params) {
  if (params.per_channel)
    return at::fake_quantize_per_channel_affine(x, params.scale.to(x.device()), params.zero_point.to(x.device()), 0,
                                                params.quant_min, params.quant_max);
  const double scale = params.scale.item<double>();
  const int64_t zero = params.zero_point.item<int64_t>();
  if (x.scalar_type() == torch::kFloat && !(torch::GradMode::is_enabled() && x.requires_grad())) {
    // No gradient to carry (evaluation, calibration): ATen's kernel arithmetic in float,
    // round(x · (1/s)) + z clamped, minus z, times s, as one out-of-place and four in-place
    // passes. The op itself also writes the straight-through mask and runs about 4x slower.
    const float step = static_cast<float>(scale);
    const float inverse = 1.0f / step;
    return x.mul(static_cast<double>(inverse))
        .round_()
        .add_(zero)
        .clamp_(static_cast<double>(params.quant_min), static_cast<double>(params.quant_max))
        .sub_(zero)
        .mul_(static_cast<double>(step));
  }
  return at::fake_quantize_per_tensor_affine(x, scale, zero, params.quant_min, params.quant_max);
}

}  // namespace qrobust::quant
