#include <catch2/catch.hpp>

#include "data/batches.h"
#include "models/registry.h"
#include "sweep/first_order.h"
#include "test_support.h"

using namespace qrobust;
namespace F = torch::nn::functional;

TEST_CASE("the first-order bound's terms equal per-sample gradients computed one image at a time") {
  torch::manual_seed(11);
  auto model = models::make_model("resnet8", {3, 8, 8, 10}, 4);
  model->eval();
  auto [images, labels] = testing::synthetic_images(20, 3, 8, 3);
  data::LabeledImages split{images, labels, nullptr};
  data::DatasetInfo info{"cifar10", 3, 8, 8, 10, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}};
  // Uneven batches (7, 7, 6): the result must not depend on how the split is cut.
  const auto gradients = sweep::first_order_gradients(*model, split, info, 7, torch::kCPU);

  data::BatchOptions whole;
  whole.batch_size = 20;
  const auto batch = data::EpochBatches(split, info, whole, 0, torch::kCPU).get(0);
  const auto& layers = model->quant_layers();
  const auto& points = model->quant_points();
  // Weights: the gradient of the mean loss over all 20 images in one pass.
  model->zero_grad();
  F::cross_entropy(model->forward(batch.images), batch.targets).backward();
  for (size_t l = 0; l < layers.size(); ++l) {
    INFO(layers[l].name);
    CHECK(torch::allclose(gradients.weight_grads[l], layers[l].weight().grad(), 1e-4, 1e-7));
  }
  // Points: the mean over images of ‖∂CE_i/∂a_i‖₁, one image per forward pass.
  std::vector<double> expected(points.size(), 0.0);
  for (int64_t i = 0; i < 20; ++i) {
    models::RecordScope record(points);
    const auto loss = F::cross_entropy(model->forward(batch.images.narrow(0, i, 1).clone().requires_grad_(true)),
                                       batch.targets.narrow(0, i, 1));
    std::vector<torch::Tensor> recorded;
    for (const auto& point : points) recorded.push_back(point->recorded());
    const auto grads = torch::autograd::grad({loss}, recorded);
    for (size_t p = 0; p < points.size(); ++p) expected[p] += grads[p].abs().sum().item<double>() / 20;
  }
  for (size_t p = 0; p < points.size(); ++p) {
    INFO(points[p]->name());
    CHECK(gradients.activation_l1[p] == Approx(expected[p]).epsilon(1e-4));
  }
  CHECK(gradients.activation_l1[1] != Approx(gradients.activation_l1[2]));  // one sum per point

  // The terms: Σ_c (δ_c/2)·Σ|g_c| per layer and (δ_p/2)·‖∂L/∂a_p‖₁ per point, element by element.
  std::vector<torch::Tensor> weight_steps;
  std::vector<double> activation_steps;
  for (const auto& layer : layers) weight_steps.push_back(torch::rand({layer.weight().size(0)}) + 0.1);
  for (size_t p = 0; p < points.size(); ++p) activation_steps.push_back(0.05 * static_cast<double>(p + 1));
  const auto terms = sweep::first_order_bound(gradients, weight_steps, activation_steps);
  double total = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    const auto g = gradients.weight_grads[l].contiguous();
    const int64_t channels = g.size(0), per_channel = g.numel() / channels;
    const float* values = g.data_ptr<float>();
    double term = 0;
    for (int64_t c = 0; c < channels; ++c) {
      double l1 = 0;
      for (int64_t k = 0; k < per_channel; ++k) l1 += std::abs(values[c * per_channel + k]);
      term += weight_steps[l][c].item<double>() / 2 * l1;
    }
    CHECK(terms.layers[l] == Approx(term).epsilon(1e-5));
    total += term;
  }
  for (size_t p = 0; p < points.size(); ++p) {
    CHECK(terms.points[p] == Approx(activation_steps[p] / 2 * expected[p]).epsilon(1e-4));
    total += activation_steps[p] / 2 * expected[p];
  }
  CHECK(terms.total() == Approx(total).epsilon(1e-4));
}
