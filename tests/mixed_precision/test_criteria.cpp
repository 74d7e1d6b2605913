#include <catch2/catch.hpp>

#include "mixed_precision/criteria.h"
#include "sweep/sensitivity.h"
#include "sweep/sweep.h"
#include "test_support.h"
#include "train/trainer.h"

using namespace qrobust;
namespace F = torch::nn::functional;

TEST_CASE("Hutchinson's trace estimates converge to the exact Hessian traces of a small network") {
  torch::manual_seed(3);
  const auto options = torch::TensorOptions().dtype(torch::kDouble);
  auto w1 = torch::randn({5, 4}, options).requires_grad_(true);
  auto w2 = torch::randn({3, 5}, options).requires_grad_(true);
  const auto x = torch::randn({6, 4}, options);
  const auto y = torch::tensor({0, 1, 2, 0, 1, 2}, torch::kLong);
  auto loss_of = [&] { return F::cross_entropy(torch::tanh(x.mm(w1.t())).mm(w2.t()), y); };

  // The exact Hessian over both weights, one double-backprop row per coordinate.
  const std::vector<torch::Tensor> inputs{w1, w2};
  const auto loss = loss_of();
  const auto grads = torch::autograd::grad({loss}, inputs, {}, true, true);
  const auto flat = torch::cat({grads[0].flatten(), grads[1].flatten()});
  const int64_t n = flat.numel(), n1 = w1.numel();
  auto hessian = torch::zeros({n, n}, options);
  for (int64_t k = 0; k < n; ++k) {
    const auto row = torch::autograd::grad({flat[k]}, inputs, {}, true);
    hessian[k] = torch::cat({row[0].flatten(), row[1].flatten()});
  }
  const auto diagonal = hessian.diagonal();
  const std::vector<double> exact{diagonal.slice(0, 0, n1).sum().item<double>(), diagonal.slice(0, n1).sum().item<double>()};
  // Each block's estimator has variance Σ over pairs a < b of H_ab² (1[a in block] + 1[b in block])².
  std::vector<double> variance(2, 0.0);
  const auto h = hessian.accessor<double, 2>();
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = a + 1; b < n; ++b)
      for (int block = 0; block < 2; ++block) {
        const double in = (block == 0 ? (a < n1) + (b < n1) : (a >= n1) + (b >= n1));
        variance[block] += h[a][b] * h[a][b] * in * in;
      }

  std::vector<double> previous_error(2, 1e300);
  for (const int64_t samples : {64, 4096}) {
    auto generator = at::detail::createCPUGenerator(11);
    const auto estimate = mixed_precision::hutchinson_traces(loss_of(), inputs, samples, generator);
    for (int block = 0; block < 2; ++block) {
      const double tolerance = 5 * std::sqrt(variance[block] / static_cast<double>(samples));
      INFO("block " << block << ", " << samples << " probes: estimate " << estimate[block] << ", exact " << exact[block]);
      CHECK(std::abs(estimate[block] - exact[block]) <= tolerance);
      CHECK(tolerance < previous_error[block]);
      previous_error[block] = tolerance;
    }
  }
  // The same seed gives the same probes.
  auto a = at::detail::createCPUGenerator(5), b = at::detail::createCPUGenerator(5);
  CHECK(mixed_precision::hutchinson_traces(loss_of(), inputs, 8, a) == mixed_precision::hutchinson_traces(loss_of(), inputs, 8, b));
}

TEST_CASE("the measured criterion's one-in increases and the first-order scores are the sensitivity analysis' figures") {
  const testing::TrainedTinyRun run(1, [](config::ExperimentConfig& c) {
    c.data.val_size = 40;
    c.quant.calibration_samples(32);
  });
  const auto& config = run.config;
  const auto& checkpoint = run.checkpoint;
  const auto splits = data::load_splits(config.data, config.seed);

  auto reference_model = sweep::load_trained_model(config, checkpoint, torch::kCPU);
  sweep::SensitivityOptions sensitivity_options;
  sensitivity_options.bits = 4;
  sensitivity_options.split = data::Split::kVal;
  sensitivity_options.progress = false;
  const auto sensitivity = sweep::sensitivity_model(*reference_model, splits, config, sensitivity_options, torch::kCPU);

  auto model = sweep::load_trained_model(config, checkpoint, torch::kCPU);
  auto prepared = sweep::prepare_model(*model, splits, config, data::Split::kVal, 1, torch::kCPU);
  const mixed_precision::ScoringInputs inputs{prepared.quantizer.get(), &splits.val, &splits.info,
                                              config.data.eval_batch_size, torch::kCPU, 1};
  const std::vector<std::vector<int>> layer_bits(model->quant_layers().size(), {4, 8});
  const std::vector<std::vector<int>> point_bits(model->quant_points().size(), {4});
  const auto measured = mixed_precision::score_elements(mixed_precision::Criterion::kMeasured, inputs, layer_bits, point_bits, 1);
  const auto first_order = mixed_precision::score_elements(mixed_precision::Criterion::kFirstOrder, inputs, layer_bits, point_bits, 1);
  CHECK(measured.passes == 1 + 2 * static_cast<int64_t>(layer_bits.size()) + static_cast<int64_t>(point_bits.size()));
  CHECK(first_order.passes == 1);
  size_t layer = 0, point = 0;
  for (const auto& row : sensitivity["rows"]) {
    const bool weights = row["kind"] == "weights";
    INFO(row["name"]);
    const double increase = weights ? measured.layers[layer].at(4) : measured.points[point].at(4);
    const double bound = weights ? first_order.layers[layer++].at(4) : first_order.points[point++].at(4);
    CHECK(increase == Approx(row["loss_increase"].get<double>()).margin(1e-6));  // float32 losses
    CHECK(bound == Approx(row["bound_term"].get<double>()).epsilon(1e-5));
  }
  // Finer grids do less damage by the bound.
  for (size_t l = 0; l < layer_bits.size(); ++l) CHECK(first_order.layers[l].at(8) < first_order.layers[l].at(4));

  const auto hessian = mixed_precision::score_elements(mixed_precision::Criterion::kHessianTrace, inputs, layer_bits, point_bits, 3);
  CHECK(hessian.passes == 1 + 3);  // the gradient graph and 3 probes, each over every scored image
  for (size_t l = 0; l < layer_bits.size(); ++l) CHECK(std::isfinite(hessian.layers[l].at(4)));
}
