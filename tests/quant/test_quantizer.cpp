#include <catch2/catch.hpp>

#include "quant/calibration.h"
#include "quant/quantizer.h"
#include "quant/range_estimator.h"
#include "util/errors.h"

using namespace qrobust;
using namespace qrobust::quant;

namespace {
// dequant(clamp(round(x/s) + z, qmin, qmax)) written out, per row along dim 0 when s has one
// element per row. Rounding is half-to-even, as std::nearbyint and the ATen kernels do.
torch::Tensor reference(const torch::Tensor& x, const torch::Tensor& scale, const torch::Tensor& zero, int64_t qmin,
                        int64_t qmax) {
  auto out = torch::empty_like(x);
  const auto flat_x = x.reshape({x.size(0), -1});
  auto flat_out = out.view({x.size(0), -1});
  for (int64_t r = 0; r < flat_x.size(0); ++r) {
    const double s = scale.numel() == 1 ? scale.item<double>() : scale[r].item<double>();
    const double z = zero.numel() == 1 ? zero.item<double>() : zero[r].item<double>();
    for (int64_t i = 0; i < flat_x.size(1); ++i) {
      const double q = std::nearbyint(static_cast<double>(flat_x[r][i].item<float>()) / s) + z;
      flat_out[r][i] = (std::min<double>(std::max<double>(q, static_cast<double>(qmin)), static_cast<double>(qmax)) - z) * s;
    }
  }
  return out;
}
}  // namespace

TEST_CASE("fake quantization equals dequant(clamp(round(x/s)+z)) per tensor and per channel") {
  torch::manual_seed(0);
  const auto x = torch::randn({4, 3, 3, 3}) * 2 + 0.3;
  for (int bits : {2, 4, 8}) {
    for (bool symmetric : {true, false}) {
      for (bool per_channel : {false, true}) {
        INFO("bits " << bits << " symmetric " << symmetric << " per channel " << per_channel);
        const QuantizerSpec spec{bits, symmetric, per_channel};
        const auto range = estimate_range(x, {Estimator::kMinMax}, spec);
        const auto params = affine_params(range.min, range.max, spec);
        const auto out = fake_quantize(x, params);
        CHECK(torch::allclose(out, reference(x, params.scale, params.zero_point, params.quant_min, params.quant_max), 1e-5, 1e-6));
        // At most 2^b levels per channel, and the extremes are represented within half a step.
        const auto rows = out.reshape({4, -1});
        for (int64_t r = 0; r < 4; ++r) CHECK(std::get<0>(at::_unique(rows[r])).numel() <= (int64_t{1} << bits));
        const double step = params.scale.max().item<double>();
        CHECK((out - x).abs().max().item<double>() <= step / 2 + 1e-5);
        if (symmetric) CHECK(params.zero_point.abs().sum().item<int>() == 0);
      }
    }
  }
}

TEST_CASE("non-negative ranges with a symmetric quantizer use the unsigned grid") {
  const auto relu = torch::rand({1000}) * 3;
  const auto params = affine_params(relu.min(), relu.max(), {4, true, false});
  CHECK(params.quant_min == 0);
  CHECK(params.quant_max == 15);
  CHECK(params.scale.item<double>() == Approx(relu.max().item<double>() / 15));
}

TEST_CASE("bit-widths outside 2..16 and 32 are usage errors") {
  CHECK_NOTHROW(check_bits(2, "x"));
  CHECK_NOTHROW(check_bits(16, "x"));
  CHECK_NOTHROW(check_bits(32, "x"));
  CHECK_THROWS_WITH(check_bits(1, "--weight-bits"), Catch::Contains("--weight-bits: bit-width 1"));
  CHECK_THROWS_AS(check_bits(17, "x"), UsageError);
  // 16 bits works through the ATen op and is nearly lossless.
  const auto x = torch::randn({100});
  const auto p = affine_params(x.min(), x.max(), {16, false, false});
  CHECK((fake_quantize(x, p) - x).abs().max().item<double>() < 1e-4);
}

TEST_CASE("a range that is not finite (diverged weights) is a runtime failure, not an ATen error") {
  const auto nan = torch::full({1}, std::nan(""));
  CHECK_THROWS_AS(affine_params(nan, torch::ones({1}), {4, true, false}), RuntimeFailure);
  CHECK_THROWS_WITH(affine_params(-torch::ones({2}), torch::full({2}, INFINITY), {4, false, true}),
                    Catch::Contains("quantizer range is not finite"));
}

TEST_CASE("range estimators on known distributions") {
  torch::manual_seed(1);
  auto gaussian = torch::randn({100000});
  gaussian.narrow(0, 0, 10).fill_(40.0);  // a few outliers
  const QuantizerSpec four_bit{4, true, false};
  const auto minmax = estimate_range(gaussian, {Estimator::kMinMax}, four_bit);
  CHECK(minmax.max.item<double>() == Approx(40.0));
  const auto percentile = estimate_range(gaussian, {Estimator::kPercentile, 99.0}, four_bit);
  CHECK(percentile.max.item<double>() == Approx(2.576).epsilon(0.03));  // 99th percentile of |N(0,1)|
  const auto mse = estimate_range(gaussian, {Estimator::kMse}, four_bit);
  CHECK(mse.max.item<double>() < 0.5 * minmax.max.item<double>());
  // And its choice has the lower error.
  auto error = [&](const Range& r) {
    return (fake_quantize(gaussian, affine_params(r.min, r.max, four_bit)) - gaussian).pow(2).mean().item<double>();
  };
  CHECK(error(mse) < error(minmax));
  // mse depends on the bit-width: more bits, less clipping.
  const auto mse8 = estimate_range(gaussian, {Estimator::kMse}, {8, true, false});
  CHECK(mse8.max.item<double>() > mse.max.item<double>());
  // Per channel: one range per output channel.
  const auto w = torch::randn({6, 10}) * torch::arange(1, 7).view({6, 1});
  const auto per_channel = estimate_range(w, {Estimator::kMinMax}, {8, true, true});
  CHECK(per_channel.max.sizes() == torch::IntArrayRef({6}));
  CHECK(torch::allclose(per_channel.max, std::get<0>(w.max(1))));
}

TEST_CASE("the activation observer keeps exact extremes and a bounded sample") {
  ActivationObserver minmax({Estimator::kMinMax});
  minmax.observe(torch::tensor({1.0, 2.0}));
  minmax.observe(torch::tensor({-3.0, 0.5}));
  const auto r = minmax.range({8, false, false});
  CHECK(r.min.item<double>() == -3.0);
  CHECK(r.max.item<double>() == 2.0);
  ActivationObserver percentile({Estimator::kPercentile, 90.0}, /*sample_limit=*/5000);
  for (int i = 0; i < 10; ++i) percentile.observe(torch::arange(0, 1000).to(torch::kFloat));
  CHECK(percentile.range({8, false, false}).max.item<double>() == Approx(900).epsilon(0.05));
}

TEST_CASE("the first/last policy keeps the first and last layer at the sweep's bits, 8 bits or float") {
  CHECK(policy_bits(FirstLast::kQuantize, 0, 5, 4) == 4);
  CHECK(policy_bits(FirstLast::kInt8, 0, 5, 4) == 8);
  CHECK(policy_bits(FirstLast::kInt8, 4, 5, 4) == 8);
  CHECK(policy_bits(FirstLast::kInt8, 2, 5, 4) == 4);
  CHECK(policy_bits(FirstLast::kFloat, 4, 5, 4) == kFloatBits);
  CHECK(policy_bits(FirstLast::kInt8, 0, 5, kFloatBits) == kFloatBits);  // a float configuration stays float
}

TEST_CASE("the no-gradient per-tensor path equals LibTorch's fake-quantize op bit for bit") {
  torch::manual_seed(2);
  for (const auto& [symmetric, bits] : {std::pair<bool, int>{false, 4}, {false, 8}, {true, 3}, {true, 8}}) {
    INFO("symmetric " << symmetric << " bits " << bits);
    const QuantizerSpec spec{bits, symmetric, false};
    auto x = torch::randn({64, 8, 5, 5}) * 3 - 0.7;
    const auto params = affine_params(x.min() * 0.8, x.max() * 0.8, spec);  // some values clip
    // Exact half steps round to even in both.
    const float s = static_cast<float>(params.scale.item<double>());
    x.view(-1).narrow(0, 0, 9).copy_(torch::arange(-4, 5, torch::kFloat).add(0.5).mul(s));
    const auto expected = at::fake_quantize_per_tensor_affine(x, params.scale.item<double>(), params.zero_point.item<int64_t>(),
                                                              params.quant_min, params.quant_max);
    CHECK(torch::equal(fake_quantize(x, params), expected));
    // Channels-last memory and a tensor large enough to be split over threads take the same path.
    const auto wide = torch::randn({32, 16, 32, 32}).contiguous(torch::MemoryFormat::ChannelsLast) * 3;
    const auto wide_expected = at::fake_quantize_per_tensor_affine(
        wide, params.scale.item<double>(), params.zero_point.item<int64_t>(), params.quant_min, params.quant_max);
    const auto wide_quantized = fake_quantize(wide, params);
    CHECK(wide_quantized.is_contiguous(torch::MemoryFormat::ChannelsLast));
    CHECK(torch::equal(wide_quantized, wide_expected));
    // Infinities clamp to the grid's ends; NaN stays NaN, as in the op.
    const auto odd = fake_quantize(torch::tensor({INFINITY, -INFINITY, NAN}), params);
    CHECK(odd[0].item<float>() == expected.max().item<float>());
    CHECK(odd[1].item<float>() == expected.min().item<float>());
    CHECK(std::isnan(odd[2].item<float>()));
    // With a gradient to carry, the op itself: the straight-through mask.
    const auto leaf = x.clone().requires_grad_(true);
    const auto through = fake_quantize(leaf, params);
    CHECK(torch::equal(through.detach(), expected));
    through.sum().backward();
    CHECK(leaf.grad().sum().item<double>() < static_cast<double>(x.numel()));  // clipped values pass no gradient
  }
}
