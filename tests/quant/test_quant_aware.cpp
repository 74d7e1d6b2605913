#include <catch2/catch.hpp>

#include "models/registry.h"
#include "quant/bn_fold.h"
#include "quant/calibration.h"
#include "quant/quant_aware.h"

using namespace qrobust;
namespace F = torch::nn::functional;

namespace {

// A small ResNet whose batch norms hold non-trivial running statistics.
models::Classifier model_with_statistics(std::vector<torch::Tensor>& calibration) {
  torch::manual_seed(3);
  auto model = models::make_model("resnet8", {3, 16, 16, 10}, 4);
  model->train();
  {
    torch::NoGradGuard no_grad;
    for (int i = 0; i < 5; ++i) model->forward(torch::randn({16, 3, 16, 16}) * 1.5 + 0.3);
  }
  calibration = {torch::randn({32, 3, 16, 16}), torch::randn({32, 3, 16, 16})};
  return model;
}

models::Classifier copy_of(const models::Classifier& model) {
  auto copy = models::make_model("resnet8", {3, 16, 16, 10}, 4);
  torch::NoGradGuard no_grad;
  const auto parameters = model->named_parameters();
  for (auto& p : copy->named_parameters()) p.value().copy_(parameters[p.key()]);
  const auto buffers = model->named_buffers();
  for (auto& b : copy->named_buffers()) b.value().copy_(buffers[b.key()]);
  return copy;
}

}  // namespace

TEST_CASE("a quantization-aware step computes what the sweep's BN-folded, quantized model computes") {
  std::vector<torch::Tensor> calibration;
  auto model = model_with_statistics(calibration);
  config::QuantConfig quant;
  quant.weight_granularity = GENERATE(as<std::string>{}, "per_tensor", "per_channel");
  const int bits = GENERATE(4, 8);

  auto deployed = copy_of(model);
  quant::fold_batch_norms(*deployed);
  quant::PostTrainingQuantizer ptq(*deployed, quant);
  ptq.calibrate(calibration);
  ptq.apply(bits, bits);
  const auto images = torch::randn({8, 3, 16, 16});
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = deployed->forward(images);
  }

  quant::QuantAwareTraining qat(*model, quant, bits, bits);
  qat.begin_epoch(calibration);
  CHECK(model->is_training());
  for (const auto& layer : model->quant_layers())
    if (layer.norm) CHECK_FALSE(layer.norm->is_training());  // frozen statistics, as folding assumes
  torch::Tensor actual;
  {
    quant::QuantAwareTraining::QuantizedStep step(qat);
    actual = model->forward(images);
  }
  CHECK(torch::allclose(actual, expected, 1e-4, 1e-4));
  // Off again: the float model.
  for (const auto& layer : model->quant_layers()) CHECK(layer.forward_weight().is_same(layer.weight()));
  torch::NoGradGuard no_grad;
  model->eval();
  CHECK_FALSE(torch::allclose(model->forward(images), expected, 1e-4, 1e-4));
}

TEST_CASE("quantization-aware gradients are straight-through: the float gradient at the quantized weights") {
  std::vector<torch::Tensor> calibration;
  auto model = model_with_statistics(calibration);
  config::QuantConfig quant;  // per-tensor min-max: no weight is clipped, so the STE mask is all ones
  quant::QuantAwareTraining qat(*model, quant, 4, 8);
  qat.begin_epoch(calibration);
  const auto images = torch::randn({8, 3, 16, 16});
  const auto targets = torch::randint(0, 10, {8}, torch::kLong);
  {
    quant::QuantAwareTraining::QuantizedStep step(qat);
    F::cross_entropy(model->forward(images), targets).backward();
  }

  // Reference: the same quantized step on a copy whose layers read the quantized weights as
  // leaves; the straight-through gradient of W is the gradient of those leaves.
  auto reference = copy_of(model);
  quant::QuantAwareTraining reference_qat(*reference, quant, 4, 8);
  reference_qat.begin_epoch(calibration);
  std::vector<torch::Tensor> leaves;
  {
    quant::QuantAwareTraining::QuantizedStep step(reference_qat);
    for (const auto& layer : reference->quant_layers()) {
      leaves.push_back(layer.forward_weight().detach().requires_grad_(true));
      layer.forward_weight() = leaves.back();
    }
    F::cross_entropy(reference->forward(images), targets).backward();
  }

  const auto& layers = model->quant_layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    INFO(layers[i].name);
    REQUIRE(layers[i].weight().grad().defined());
    CHECK(layers[i].weight().grad().abs().sum().item<double>() > 0);
    CHECK(torch::allclose(layers[i].weight().grad(), leaves[i].grad(), 1e-4, 1e-6));
  }
}
