#include <catch2/catch.hpp>

#include "models/layer_ops.h"
#include "models/registry.h"
#include "quant/bias_correction.h"
#include "quant/bn_fold.h"
#include "quant/calibration.h"

using namespace qrobust;

TEST_CASE("the expected ReLU of a normal matches a Monte Carlo estimate") {
  torch::manual_seed(3);
  const auto mean = torch::tensor({-2.0, -0.5, 0.0, 0.3, 1.5, 4.0, 0.7}, torch::kDouble);
  const auto std = torch::tensor({1.0, 0.5, 2.0, 0.1, 1.0, 0.5, 0.0}, torch::kDouble);
  const int64_t n = 400000;
  const auto samples = (torch::randn({n, 7}, torch::kDouble) * std + mean).relu();
  const auto estimate = samples.mean(0);
  const auto standard_error = samples.std(0) / std::sqrt(static_cast<double>(n));
  const auto closed_form = quant::relu_normal_mean(mean, std);
  CHECK(((closed_form - estimate).abs() <= 4 * standard_error + 1e-12).all().item<bool>());
  CHECK(closed_form[6].item<double>() == Approx(0.7));  // a zero deviation is ReLU of the mean
}

TEST_CASE("the analytical bias shift is the mean output error over ReLU-of-normal inputs") {
  torch::manual_seed(4);
  const auto mean = torch::randn({6}, torch::kDouble), std = torch::rand({6}, torch::kDouble) + 0.2;
  const auto weight = torch::randn({5, 6}, torch::kDouble);
  const auto quantized = (weight * 2).round() / 2;
  const auto inputs = (torch::randn({300000, 6}, torch::kDouble) * std + mean).relu();
  const auto measured = -(inputs.matmul((quantized - weight).t())).mean(0);
  const auto shift = quant::analytical_bias_shift(weight, quantized, quant::relu_normal_mean(mean, std));
  CHECK(torch::allclose(shift, measured, 0, 5e-3));
  // A convolution's kernel acts as its sum over the window on a constant input.
  const auto conv_weight = torch::randn({4, 6, 3, 3}, torch::kDouble);
  const auto conv_quantized = (conv_weight * 2).round() / 2;
  const auto expected = quant::relu_normal_mean(mean, std);
  const auto constant = expected.view({1, 6, 1, 1}).expand({1, 6, 5, 5});
  const auto error = at::conv2d(constant, conv_quantized - conv_weight).index({0, torch::indexing::Slice(), 1, 1});
  CHECK(torch::allclose(quant::analytical_bias_shift(conv_weight, conv_quantized, expected), -error, 1e-9, 1e-12));
}

TEST_CASE("empirical bias correction zeroes each corrected layer's mean output error on the calibration images") {
  torch::manual_seed(5);
  for (const std::string name : {"resnet8", "vgg_like"}) {
    INFO(name);
    auto model = models::make_model(name, {3, 16, 16, 10}, 4);
    model->eval();
    quant::fold_batch_norms(*model);
    quant::QuantOptions options;
    options.bias_correction(quant::BiasCorrection::kEmpirical);
    quant::PostTrainingQuantizer quantizer(*model, options);
    const std::vector<torch::Tensor> batches{torch::randn({24, 3, 16, 16}), torch::randn({8, 3, 16, 16})};
    quantizer.calibrate(batches);
    const auto plan = quantizer.plan(3, quant::kFloatBits);
    const auto corrected = quantizer.layer_weights(plan.layer_bits, 0);

    const auto& layers = model->quant_layers();
    torch::NoGradGuard no_grad;
    // Each layer's output in the float network and in the network every corrected layer is in.
    auto outputs = [&](bool quantized) {
      std::vector<std::vector<torch::Tensor>> out(layers.size());
      std::vector<std::unique_ptr<models::LayerInputScope>> captures;
      for (size_t i = 0; i < layers.size(); ++i)
        captures.push_back(std::make_unique<models::LayerInputScope>(*layers[i].layer, [&, i](const torch::Tensor& x) {
          const auto& w = layers[i];
          auto y = w.apply(x, w.forward_weight());
          const auto& b = w.forward_bias();
          if (b.defined()) y = y + (y.dim() == 4 ? b.view({1, -1, 1, 1}) : b.view({1, -1}));
          out[i].push_back(y);
        }));
      std::unique_ptr<quant::LayerWeightsScope> scope;
      if (quantized) scope = std::make_unique<quant::LayerWeightsScope>(layers, corrected);
      for (const auto& images : batches) model->forward(images);
      return out;
    };
    const auto reference = outputs(false), deployed = outputs(true);
    for (size_t i = 0; i < layers.size(); ++i) {
      INFO(layers[i].name);
      const auto error = torch::cat(deployed[i]) - torch::cat(reference[i]);
      std::vector<int64_t> dims{0};
      for (int64_t d = 2; d < error.dim(); ++d) dims.push_back(d);
      const auto mean_error = error.mean(dims);
      CHECK(mean_error.abs().max().item<double>() < 1e-5 * (1 + torch::cat(reference[i]).abs().max().item<double>()));
      // The rounding did move the outputs: the correction is not trivially zero.
      CHECK(error.abs().max().item<double>() > 1e-3);
    }
  }
}
