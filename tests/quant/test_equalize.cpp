#include <catch2/catch.hpp>

#include "models/registry.h"
#include "quant/bn_fold.h"
#include "quant/equalize.h"

using namespace qrobust;

namespace {

// A model whose batch norms hold uneven, seeded statistics, so that folding gives channels of
// widely different ranges (as training does), in eval mode.
models::Classifier uneven_model(const std::string& name, int64_t width, torch::ScalarType dtype) {
  torch::manual_seed(11);
  auto model = models::make_model(name, {3, 16, 16, 10}, width);
  torch::NoGradGuard no_grad;
  for (auto& module : model->modules(false)) {
    if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
      bn->weight.copy_(torch::exp(torch::randn_like(bn->weight) * 1.5));
      bn->bias.copy_(torch::randn_like(bn->bias) * 0.5);
      bn->running_mean.copy_(torch::randn_like(bn->running_mean) * 0.2);
      bn->running_var.copy_(torch::rand_like(bn->running_var) + 0.5);
    } else if (auto* bn1 = module->as<torch::nn::BatchNorm1d>()) {
      bn1->weight.copy_(torch::exp(torch::randn_like(bn1->weight)));
      bn1->bias.copy_(torch::randn_like(bn1->bias) * 0.5);
    }
  }
  model->to(dtype);
  model->eval();
  return model;
}

double largest_relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

}  // namespace

TEST_CASE("models declare the layer pairs joined only by a ReLU") {
  auto vgg = models::make_model("vgg_like", {3, 32, 32, 10}, 8);
  const auto& links = vgg->relu_links();
  // conv1-conv2, conv2-pool-conv3, conv3-conv4, conv4-pool-conv5, conv5-conv6,
  // conv6-pool-flatten-fc1 (4 x 4 positions per channel), fc1-fc.
  REQUIRE(links.size() == 7);
  CHECK(links[1].through_max_pool);
  CHECK_FALSE(links[2].through_max_pool);
  CHECK(links[5].first == 5);
  CHECK(links[5].second == 6);
  CHECK(links[5].group == 16);
  CHECK(links[6].group == 1);
  // ResNet-8: one link inside each of its three basic blocks; none across a residual addition.
  auto resnet = models::make_model("resnet8", {3, 8, 8, 10}, 4);
  REQUIRE(resnet->relu_links().size() == 3);
  CHECK(resnet->quant_layers()[resnet->relu_links()[0].first].name == "layer1.0.conv1");
  CHECK(resnet->quant_layers()[resnet->relu_links()[0].second].name == "layer1.0.conv2");
}

TEST_CASE("cross-layer equalization leaves the float network's function unchanged and evens out paired ranges") {
  for (const auto& [name, width] : std::vector<std::pair<std::string, int64_t>>{{"vgg_like", 8}, {"resnet8", 8}}) {
    for (const auto dtype : {torch::kFloat, torch::kDouble}) {
      INFO(name << (dtype == torch::kDouble ? " float64" : " float32"));
      auto model = uneven_model(name, width, dtype);
      quant::fold_batch_norms(*model);
      const auto images = torch::randn({8, 3, 16, 16}, dtype);
      torch::NoGradGuard no_grad;
      const auto before = model->forward(images);
      const auto scales = quant::equalization_scales(*model);
      double spread = 0;
      for (const auto& s : scales) spread = std::max(spread, s.log().abs().max().item<double>());
      CHECK(spread > 0.5);  // there is something to equalize

      const auto report = quant::equalize(*model);
      CHECK(report.links == static_cast<int64_t>(model->relu_links().size()));
      CHECK(report.max_log_scale <= 1e-6);
      const auto after = model->forward(images);
      CHECK(largest_relative_difference(after, before) < (dtype == torch::kDouble ? 1e-12 : 1e-5));

      // Paired ranges are equal, and a second pass has nothing left to do.
      const auto& layers = model->quant_layers();
      for (const auto& link : model->relu_links()) {
        const auto r1 = layers[link.first].weight().abs().flatten(1).amax(1);
        auto w2 = layers[link.second].weight().abs();
        const auto r2 = w2.dim() == 2 ? w2.view({w2.size(0), r1.size(0), link.group}).amax({0, 2})
                                      : w2.transpose(0, 1).flatten(1).amax(1);
        CHECK(torch::allclose(r1, r2, 1e-5, 0));
      }
      for (const auto& s : quant::equalization_scales(*model)) CHECK(torch::allclose(s, torch::ones_like(s), 0, 1e-5));
    }
  }
}

TEST_CASE("equalization scales the output statistics with their channels") {
  auto model = uneven_model("vgg_like", 8, torch::kDouble);
  auto statistics = quant::output_statistics(*model);
  const auto original = statistics[0].std.clone();
  quant::fold_batch_norms(*model);
  const auto folded_range = model->quant_layers()[0].weight().abs().flatten(1).amax(1);
  quant::equalize(*model, &statistics);
  // Channel c of conv1 was divided by s_c = folded range / equalized range.
  const auto scale = folded_range / model->quant_layers()[0].weight().abs().flatten(1).amax(1);
  CHECK(torch::allclose(statistics[0].std * scale, original, 1e-9, 0));
}
