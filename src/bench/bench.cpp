#include "bench/bench.h"

#include <torch/torch.h>

#include <chrono>

#include "models/registry.h"
#include "util/errors.h"
#include "util/provenance.h"
#include "util/runtime.h"

namespace qrobust::bench {
namespace {

// Seconds per call of `step`, averaged over `steps` calls after `warmup` untimed ones.
template <class Step>
double seconds_per_step(int64_t warmup, int64_t steps, Step&& step) {
  for (int64_t i = 0; i < warmup; ++i) step();
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) step();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / static_cast<double>(steps);
}

}  // namespace

nlohmann::json run_benchmark(const BenchOptions& options) {
  if (options.batch < 2) throw UsageError("--batch: must be at least 2, got " + std::to_string(options.batch));
  if (options.steps < 1) throw UsageError("--steps: must be at least 1, got " + std::to_string(options.steps));
  if (!models::is_known_model(options.model))
    throw UsageError("--model: unknown model \"" + options.model + "\" (known: " + models::known_models_text() + ")");
  const torch::Device device = util::resolve_device(options.device);
  const int threads = util::configure_threads(options.threads);
  torch::manual_seed(0);
  auto model = models::make_model(options.model, {3, 32, 32, 10});
  model->to(device);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9).weight_decay(5e-4));
  const auto images = torch::randn({options.batch, 3, 32, 32}, torch::TensorOptions().device(device));
  const auto targets = torch::randint(0, 10, {options.batch}, torch::TensorOptions().dtype(torch::kLong).device(device));
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };

  model->train();
  const double train_step = seconds_per_step(options.warmup_steps, options.steps, [&] {
    optimizer.zero_grad();
    torch::nn::functional::cross_entropy(model->forward(images), targets).backward();
    optimizer.step();
    sync();
  });
  model->eval();
  const double inference_step = seconds_per_step(options.warmup_steps, options.steps, [&] {
    torch::NoGradGuard no_grad;
    model->forward(images);
    sync();
  });
  const auto batch = static_cast<double>(options.batch);
  return {{"model", options.model},
          {"batch", options.batch},
          {"steps", options.steps},
          {"threads", threads},
          {"device", device.str()},
          {"blas", util::loaded_blas_library()},
          {"train_step_seconds", train_step},
          {"train_images_per_second", batch / train_step},
          {"inference_images_per_second", batch / inference_step},
          {"provenance", util::provenance()}};
}

}  // namespace qrobust::bench
