#pragma once
// `qrobust bench`: throughput of training steps and inference on synthetic CIFAR-shaped data,
// reported as JSON. With a regularizer it times the plain and the penalized step in the same
// run and reports their ratio, and the memory each step needs. Performance targets are checked
// here, not in tests.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "regularize/options.h"

namespace qrobust::bench {

struct BenchOptions {
  std::string model = "resnet20";
  int64_t batch = 128;
  int64_t steps = 20;
  int64_t warmup_steps = 3;
  std::string device = "auto";
  regularize::RegularizerOptions regularizer;  // penalty kNone: plain step and inference only
  // Also time the penalized step with LibTorch's own convolution, batch norm and ReLU instead of
  // models/layer_ops.h, for before/after figures from one run.
  bool compare_layer_ops = false;
  // With a regularizer: also time this many rounds of `steps` plain then `steps` penalized steps
  // and report the median of the rounds' ratios, which drifts in machine speed affect less than
  // the ratio of two phases run one after the other.
  int64_t alternate_rounds = 0;
  // Amortized versions of the regularizer, each "key=value[,key=value...]" over every, subbatch
  // and method: timed in the same alternating rounds, each round's ratio against that round's
  // plain steps.
  std::vector<std::string> amortized;
  // Also time the plain and the penalized step with the weights and the batch channels-last in
  // each alternating round, against that round's default-layout steps.
  bool compare_channels_last = false;
};

// `regularizer` with the amortization `spec` ("every=4", "subbatch=32,every=2",
// "method=finite_difference") applied; a bad spec is a UsageError naming it.
regularize::RegularizerOptions amortized_regularizer(const regularize::RegularizerOptions& regularizer,
                                                    const std::string& spec, int64_t batch);

nlohmann::json run_benchmark(const BenchOptions& options);

// `bench --sweep`: the default 6x6 sweep-bits grid on the CIFAR-10 test set in `data_root`
// against 36 plain float evaluations of the same set, timed in one run (random weights: the
// cost does not depend on them).
nlohmann::json run_sweep_benchmark(const BenchOptions& options, const std::string& data_root);

// `bench --decode DIR`: JPEG decoding and augmentation throughput of the ImageFolder pipeline
// (decode, transform, normalize; no model), no prefetching workers (time it on one thread), for the
// training transform and the evaluation transform at 224 px. When DIR/train does not exist it
// is first filled with `images` ImageNet-sized JPEGs (500 x 375, quality 90) so that a reference
// pipeline (scripts/bench_decode_reference.py) can read the same files.
nlohmann::json run_decode_benchmark(const std::string& folder, int64_t images);

}  // namespace qrobust::bench
