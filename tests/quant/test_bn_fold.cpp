#include <catch2/catch.hpp>

#include "models/layer_ops.h"
#include "models/registry.h"
#include "quant/bn_fold.h"

#include "test_support.h"

using namespace qrobust;

TEST_CASE("the BN-folded model computes what the unfolded model computes in eval mode, for every shipped model") {
  for (const auto& [name, small_width] : testing::shipped_models()) {
    INFO(name);
    torch::manual_seed(2);
    const int64_t width = 2 * small_width;
    auto model = models::make_model(name, {3, 32, 32, 10}, width);
    // Non-trivial statistics: a few training-mode passes, and random affine parameters.
    model->train();
    {
      torch::NoGradGuard no_grad;
      for (int i = 0; i < 3; ++i) model->forward(torch::randn({8, 3, 32, 32}) * 2 + 0.5);
      for (auto& p : model->named_parameters())
        if (p.key().find("bn") != std::string::npos) p.value().uniform_(0.5, 1.5);
    }
    model->eval();
    const auto x = torch::randn({4, 3, 32, 32});
    torch::NoGradGuard no_grad;
    const auto expected = model->forward(x);
    const int folded = quant::fold_batch_norms(*model);
    CHECK(folded == static_cast<int>(model->quant_layers().size()) - 1);  // every layer but the classifier
    const auto actual = model->forward(x);
    CHECK(((actual - expected).norm() / expected.norm()).item<double>() < 1e-5);
  }
}

TEST_CASE("a folded batch norm is the exact identity, which evaluation skips") {
  torch::manual_seed(3);
  auto model = models::make_model("resnet8", {3, 8, 8, 10}, 4);
  model->eval();
  quant::fold_batch_norms(*model);
  auto& norm = *model->quant_layers()[0].norm->as<torch::nn::BatchNorm2d>();
  const auto x = torch::randn({4, 4, 8, 8});
  torch::NoGradGuard no_grad;
  CHECK(torch::equal(norm.forward(x), x));  // what the skip leaves out changes nothing
  CHECK(models::batch_norm(x, norm).is_same(x));
  norm.train();  // a folded model being trained again normalizes its batches
  CHECK_FALSE(models::batch_norm(x, norm).is_same(x));
}
