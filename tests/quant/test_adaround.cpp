#include <catch2/catch.hpp>

#include "models/registry.h"
#include "quant/adaround.h"
#include "quant/calibration.h"
#include "util/errors.h"

using namespace qrobust;

namespace {

quant::AdaRoundProblem linear_problem(const torch::Tensor& weight, const quant::AffineParams& params,
                                      const torch::Tensor& inputs) {
  auto apply = [](const torch::Tensor& x, const torch::Tensor& w) { return at::linear(x, w); };
  return {weight, params, apply, inputs, apply(inputs, weight)};
}

}  // namespace

TEST_CASE("AdaRound starts at the float weight and anneals beta from 20 to 2 after the warm start") {
  const auto fraction = torch::rand({1000}, torch::kDouble) * 0.999;
  CHECK(torch::allclose(quant::rectified_sigmoid(quant::rectified_sigmoid_inverse(fraction)), fraction, 0, 1e-12));
  CHECK(quant::rectified_sigmoid(torch::tensor({-50.0, 50.0})).equal(torch::tensor({0.0, 1.0})));  // clipped
  CHECK(quant::adaround_beta(0, 1000) == 20);
  CHECK(quant::adaround_beta(200, 1000) == 20);  // 20 %: the rounding term starts here
  CHECK(quant::adaround_beta(600, 1000) == Approx(11));  // halfway through the cosine
  CHECK(quant::adaround_beta(1000, 1000) == Approx(2));
  CHECK(quant::adaround_beta(300, 1000) < 20);
  CHECK(quant::adaround_beta(900, 1000) > 2);
}

TEST_CASE("AdaRound rounds every weight down or up, repeats under its seed, and beats nearest on a toy layer") {
  // One output of 16 weights on correlated inputs: rounding errors of neighbouring weights can
  // cancel, which nearest rounding ignores. 2^16 roundings are few enough to try them all.
  torch::manual_seed(7);
  const auto mixing = torch::randn({16, 16}) * 0.3 + torch::eye(16);
  const auto inputs = torch::randn({512, 16}).matmul(mixing);
  const auto weight = torch::randn({1, 16});
  const auto params = quant::affine_params(weight.min(), weight.max(), {3, true, false});
  const auto problem = linear_problem(weight, params, inputs);
  quant::AdaRoundOptions options;
  // The rounding term must weigh about as much as this one-output layer's reconstruction error.
  options.iterations(2000).batch_size(64).learning_rate(1e-2).lambda(0.1);
  const auto learned = quant::adaround(problem, options, 1);
  CHECK(torch::equal(learned, quant::adaround(problem, options, 1)));

  const double step = params.scale.item<double>();
  const auto scaled = weight.to(torch::kDouble) / step;
  const auto levels = learned.to(torch::kDouble) / step;
  CHECK((((levels - scaled.floor()).abs() < 1e-4) | ((levels - scaled.ceil()).abs() < 1e-4)).all().item<bool>());

  // Brute force: every choice of floor or ceil (within the grid), as a 65536 x 16 mask.
  const auto codes = torch::arange(1 << 16, torch::kLong).view({-1, 1});
  const auto mask = codes.bitwise_right_shift(torch::arange(16, torch::kLong)).bitwise_and(1).to(torch::kDouble);
  const auto candidates = ((scaled.floor() + mask).clamp(params.quant_min, params.quant_max) * step);  // 65536 x 16
  const auto x = inputs.to(torch::kDouble), target = x.matmul(weight.to(torch::kDouble).t());  // 512 x 1
  const auto errors = (x.matmul(candidates.t()) - target).pow(2).mean(0);                      // 65536
  const double optimum = errors.min().item<double>();
  const double adaround_error = quant::reconstruction_error(problem, learned);
  const double nearest_error = quant::reconstruction_error(problem, quant::fake_quantize(weight, params));
  INFO("optimum " << optimum << ", AdaRound " << adaround_error << ", nearest " << nearest_error);
  CHECK(adaround_error <= nearest_error);
  CHECK(adaround_error <= 1.05 * optimum);
  CHECK(nearest_error > 1.2 * optimum);  // the toy leaves nearest rounding something to lose
}

TEST_CASE("a quantizer learns AdaRound once per layer, bit-width prefix and draw, every weight floor or ceil") {
  torch::manual_seed(8);
  auto model = models::make_model("resnet8", {3, 8, 8, 10}, 4);
  model->eval();
  quant::QuantOptions options;
  options.rounding(quant::Rounding::kAdaRound);
  options.adaround().iterations(20).batch_size(8);
  quant::PostTrainingQuantizer quantizer(*model, options, {{}, 3});
  quantizer.calibrate({torch::randn({16, 3, 8, 8})});
  quantizer.calibrate({torch::randn({16, 3, 8, 8})});
  const auto plan = quantizer.plan(4, quant::kFloatBits);
  const auto& layers = model->quant_layers();
  const auto first = quantizer.layer_weights(plan.layer_bits, 0);
  CHECK(quantizer.recipe_cost().layers == static_cast<int64_t>(layers.size()));
  const auto again = quantizer.layer_weights(plan.layer_bits, 0);
  CHECK(quantizer.recipe_cost().layers == static_cast<int64_t>(layers.size()));  // cached
  const auto other_draw = quantizer.layer_weights(plan.layer_bits, 1);
  CHECK(quantizer.recipe_cost().layers == 2 * static_cast<int64_t>(layers.size()));
  bool draws_differ = false;
  for (size_t i = 0; i < layers.size(); ++i) {
    INFO(layers[i].name);
    CHECK(torch::equal(first[i].weight, again[i].weight));
    draws_differ = draws_differ || !torch::equal(first[i].weight, other_draw[i].weight);
    const auto params = quant::weight_params(layers[i].weight(), options, 4);
    const auto scaled = layers[i].weight() / params.scale;
    const auto levels = first[i].weight / params.scale;
    CHECK((((levels - scaled.floor()).abs() < 1e-3) | ((levels - scaled.ceil()).abs() < 1e-3)).all().item<bool>());
  }
  CHECK(draws_differ);
  CHECK_THROWS_AS(quantizer.layer_weights(plan.layer_bits, 2), UsageError);
  // A plan that only changes the last layer's bits reuses every earlier layer.
  auto last_float = plan.layer_bits;
  last_float.back() = quant::kFloatBits;
  quantizer.layer_weights(last_float, 0);
  CHECK(quantizer.recipe_cost().layers == 2 * static_cast<int64_t>(layers.size()));
}
