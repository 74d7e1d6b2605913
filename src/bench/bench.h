#pragma once
// `qrobust bench`: throughput of a plain training step and of inference on synthetic
// CIFAR-shaped data, reported as JSON. Performance targets are checked here, not in tests.
#include <nlohmann/json.hpp>
#include <string>

namespace qrobust::bench {

struct BenchOptions {
  std::string model = "resnet20";
  int64_t batch = 128;
  int64_t steps = 20;
  int64_t warmup_steps = 3;
  int64_t threads = 0;  // 0: all cores
  std::string device = "auto";
};

nlohmann::json run_benchmark(const BenchOptions& options);

}  // namespace qrobust::bench
