#include <catch2/catch.hpp>

#include <cmath>

#include "evaluation/evaluate.h"
#include "models/registry.h"

using namespace qrobust;

TEST_CASE("score: loss, top-1 and top-5 against values computed by hand") {
  // 3 images, 6 classes: image 0 is right at top-1, image 1 at top-5 only, image 2 at neither.
  const auto logits = torch::tensor({{4.0, 1.0, 0.0, 0.0, 0.0, 0.0},
                                     {5.0, 4.0, 3.0, 2.0, 1.0, 0.0},
                                     {5.0, 4.0, 3.0, 2.0, 1.0, 0.0}});
  const auto targets = torch::tensor({0, 4, 5}, torch::kLong);
  double loss = 0;
  for (int64_t i = 0; i < 3; ++i) {
    double sum = 0;
    for (int64_t k = 0; k < 6; ++k) sum += std::exp(logits[i][k].item<double>());
    loss += std::log(sum) - logits[i][targets[i].item<int64_t>()].item<double>();
  }
  const auto result = evaluation::score(logits, targets);
  CHECK(result.samples == 3);
  CHECK(result.loss == Approx(loss / 3).epsilon(1e-12));
  CHECK(result.accuracy == Approx(100.0 / 3));
  CHECK(result.top5 == Approx(200.0 / 3));
  CHECK(evaluation::score(torch::empty({0, 6}), torch::empty({0}, torch::kLong)).samples == 0);
}

TEST_CASE("predict: eval-mode logits of the normalized images, in order, whatever the batch size") {
  const models::InputSpec input{3, 8, 8, 10};
  auto model = models::build_model(models::ModelOptions().name("resnet8").width(4), input, 5, torch::kCPU);
  data::DatasetInfo info;
  info.channels = 3, info.height = 8, info.width = 8, info.num_classes = 10;
  info.mean = {0.5, 0.4, 0.3}, info.std = {0.2, 0.25, 0.3};
  data::LabeledImages split;
  split.images = torch::randint(0, 256, {7, 3, 8, 8}, torch::kLong).to(torch::kUInt8);
  split.targets = torch::randint(0, 10, {7}, torch::kLong);

  model->train();
  const auto predictions = evaluation::predict(*model, split, info, 3, torch::kCPU);  // batches of 3, 3, 1
  CHECK(model->is_training());  // restored
  model->eval();
  torch::NoGradGuard no_grad;
  const auto mean = torch::tensor(info.mean, torch::kFloat).view({1, 3, 1, 1});
  const auto std = torch::tensor(info.std, torch::kFloat).view({1, 3, 1, 1});
  const auto expected = model->forward((split.images.to(torch::kFloat) / 255.0 - mean) / std);
  CHECK(torch::allclose(predictions.logits, expected, 1e-5, 1e-5));
  CHECK(torch::equal(predictions.targets, split.targets));

  const auto evaluated = evaluation::evaluate(*model, split, info, 7, torch::kCPU);
  const auto scored = evaluation::score(expected, split.targets);
  CHECK(evaluated.loss == Approx(scored.loss).epsilon(1e-5));
  CHECK(evaluated.accuracy == scored.accuracy);
}
