#include <catch2/catch.hpp>

#include "models/registry.h"
#include "quant/bn_fold.h"
#include "quant/calibration.h"
#include "quant/quant_aware.h"
#include "regularize/regularizer.h"

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
  quant::QuantOptions quant;
  quant.weight_granularity(GENERATE(quant::Granularity::kPerTensor, quant::Granularity::kPerChannel));
  const int bits = GENERATE(4, 8);

  auto deployed = copy_of(model);
  quant::fold_batch_norms(*deployed);
  quant::PostTrainingQuantizer ptq(*deployed, quant);
  ptq.calibrate(calibration);
  const auto images = torch::randn({8, 3, 16, 16});
  torch::Tensor expected;
  {
    quant::QuantizedModelScope quantized(ptq, ptq.plan(bits, bits));
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
  quant::QuantOptions quant;  // per-tensor min-max: no weight is clipped, so the STE mask is all ones
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

TEST_CASE("quantization-aware training combines with the gradient penalty: it penalizes the quantized activations") {
  std::vector<torch::Tensor> calibration;
  auto model = model_with_statistics(calibration);
  quant::QuantOptions quant;
  quant::QuantAwareTraining qat(*model, quant, 4, 4);
  qat.begin_epoch(calibration);
  const auto images = torch::randn({8, 3, 16, 16});
  const auto targets = torch::randint(0, 10, {8}, torch::kLong);
  const auto penalty = regularize::RegularizerOptions().penalty(regularize::Penalty::kGradL1).lambda_a(0.5);

  // By hand: the quantized forward, its activations recorded, one plain gradient.
  double expected = 0;
  {
    quant::QuantAwareTraining::QuantizedStep step(qat);
    models::RecordScope record(model->quant_points());
    const auto ce = F::cross_entropy(model->forward(images), targets);
    std::vector<torch::Tensor> activations;
    for (const auto& point : model->quant_points())
      if (point->recorded().requires_grad()) activations.push_back(point->recorded());
    REQUIRE(activations.size() == model->quant_points().size() - 1);
    // What is recorded is what the quantizer put out: few distinct values at 4 bits.
    CHECK(std::get<0>(at::_unique(activations[1].detach())).numel() <= 16);
    for (const auto& g : torch::autograd::grad({ce}, activations)) expected += 0.5 * g.abs().sum().item<double>();
  }
  model->zero_grad();
  regularize::StepResult result;
  {
    quant::QuantAwareTraining::QuantizedStep step(qat);
    result = regularize::make_regularizer(penalty)->step(*model, images, targets);
  }
  CHECK(result.penalty == Approx(expected).epsilon(1e-5));
  for (const auto& layer : model->quant_layers()) {
    CHECK(torch::isfinite(layer.weight().grad()).all().item<bool>());
    CHECK(layer.forward_weight().is_same(layer.weight()));
  }
  for (const auto& point : model->quant_points()) {
    CHECK_FALSE(point->quantizer());
    CHECK_FALSE(point->recording());
  }
  // The float model's penalty is another number.
  model->zero_grad();
  CHECK(regularize::make_regularizer(penalty)->step(*model, images, targets).penalty != Approx(expected).epsilon(1e-3));
}
