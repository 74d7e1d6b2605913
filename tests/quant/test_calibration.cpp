#include <catch2/catch.hpp>

#include "data/datasets.h"
#include "models/registry.h"
#include "quant/calibration.h"
#include "quant/range_estimator.h"
#include "test_support.h"

using namespace qrobust;

TEST_CASE("the calibration sample weighs every value equally, whatever the batch sizes") {
  // Batches of 500, 500 and 24 values marked 1, 2 and 3; a sample of 256 of the 1,024 values
  // should hold them in proportion 500 : 500 : 24 (the last batch 2.3 %, about 6 values).
  double counts[3] = {0, 0, 0};
  const int repeats = 40;
  for (int seed = 0; seed < repeats; ++seed) {
    quant::ActivationObserver observer({quant::Estimator::kPercentile, 99.0}, 256, static_cast<uint64_t>(seed));
    observer.observe(torch::full({500}, 1.0));
    observer.observe(torch::full({500}, 2.0));
    observer.observe(torch::full({24}, 3.0));
    const auto sample = observer.sample();
    REQUIRE(sample.numel() == 256);
    for (int v = 0; v < 3; ++v) counts[v] += sample.eq(v + 1).sum().item<double>() / repeats;
  }
  // Expected 125, 125 and 6; the standard error of each mean is below 1.
  CHECK(counts[0] == Approx(125).margin(5));
  CHECK(counts[1] == Approx(125).margin(5));
  CHECK(counts[2] == Approx(6).margin(2.5));
}

TEST_CASE("calibration draws are reproducible under the seed and differ from each other") {
  testing::TempDir data;
  testing::write_cifar10(data.path(), 40);
  auto config = testing::tiny_config(data.path(), 1);
  config.quant.calibration_samples(50);
  const auto splits = data::load_splits(config.data, config.seed);
  auto draw = [&](int64_t index) {
    return quant::calibration_batches(splits, config.quant.calibration_samples(), static_cast<uint64_t>(config.seed),
                                      config.data.eval_batch_size, torch::kCPU, index);
  };
  const auto first = draw(0);
  const auto again = draw(0);
  const auto second = draw(1);
  const auto all = [](const std::vector<torch::Tensor>& batches) { return torch::cat(batches); };
  CHECK(all(first).size(0) == 50);
  CHECK(torch::equal(all(first), all(again)));
  CHECK(torch::equal(all(draw(1)), all(second)));
  CHECK_FALSE(torch::equal(all(first), all(second)));
  config.seed += 1;
  CHECK_FALSE(torch::equal(all(draw(0)), all(first)));
}

TEST_CASE("calibration draws give their own activation ranges, weight scopes restore the float weights") {
  torch::manual_seed(5);
  auto model = models::make_model("resnet8", {3, 8, 8, 10}, 4);
  model->eval();
  quant::QuantOptions quant;
  quant::PostTrainingQuantizer quantizer(*model, quant);
  CHECK(quantizer.calibrate({torch::randn({16, 3, 8, 8})}) == 0);
  CHECK(quantizer.calibrate({torch::randn({16, 3, 8, 8}) * 3}) == 1);
  const auto plan = quantizer.plan(4, 4);
  const auto steps0 = quantizer.activation_steps(plan.point_bits, 0), steps1 = quantizer.activation_steps(plan.point_bits, 1);
  CHECK(steps1[0] > 2 * steps0[0]);  // the input's range grew threefold

  const auto before = model->quant_layers()[2].weight().clone();
  {
    quant::WeightQuantizeScope weights(quantizer, plan.layer_bits);
    const auto quantized = model->quant_layers()[2].weight();
    CHECK_FALSE(torch::equal(quantized, before));
    CHECK(torch::allclose(quantized, quantizer.quantized_weight(2, 4)));
    CHECK(std::get<0>(at::_unique(quantized)).numel() <= 15);  // a signed 4-bit grid
  }
  CHECK(torch::equal(model->quant_layers()[2].weight(), before));
}
