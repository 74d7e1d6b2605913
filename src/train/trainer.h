#pragma once
// Training a classifier from a config into a run directory:
//   RUN/config.yaml       the resolved config
//   RUN/train_log.jsonl   one JSON record per epoch: lr, train loss / CE / penalty / accuracy,
//                         test (and val) loss and accuracy, per-layer gradient norms, seconds, img/s
//   RUN/checkpoint.pt     after every epoch (atomic), see checkpoint.h
//   RUN/metrics.json      final figures (atomic), with the SHA-1 of the final checkpoint
//                         (checkpoint_sha1), of the one it started from (trunk_sha1) and the
//                         machine's numerics_fingerprint
// A resumed run continues from the last checkpoint and ends with the same weights as an
// uninterrupted one (same seed, threads and machine: oneDNN picks its kernels by CPU): data
// order and augmentation are functions of (seed, epoch, batch), and the checkpoint holds
// weights, batch-norm statistics and momentum.
// The configured regularizer (regularize/regularizer.h) runs every step from its start_epoch on.
#include <torch/torch.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>

#include "config/config.h"
#include "data/datasets.h"
#include "models/classifier.h"
#include "util/errors.h"

namespace qrobust::parallel {
class DataParallel;
}

namespace qrobust::train {

// The loss became NaN or infinite; the last good checkpoint is kept.
class TrainingDiverged : public RuntimeFailure {
 public:
  using RuntimeFailure::RuntimeFailure;
};

// A stop was requested (SIGINT/SIGTERM); the partial epoch is discarded.
class TrainingInterrupted : public RuntimeFailure {
 public:
  using RuntimeFailure::RuntimeFailure;
};

// Receives progress; the trainer itself prints nothing.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  virtual void on_epoch_start(int64_t /*epoch*/, int64_t /*epochs*/, int64_t /*steps*/, int64_t /*images*/) {}
  virtual void on_step(int64_t /*step*/, int64_t /*images_done*/, double /*loss*/) {}
  virtual void on_epoch_end(const nlohmann::json& /*record*/) {}
};

struct TrainOptions {
  std::string run_dir;
  bool resume = false;
  TrainObserver* observer = nullptr;        // optional
  const std::atomic<bool>* stop = nullptr;  // optional; checked before every step
  // Optional (parallel/data_parallel.h): train on this process's shard of every batch, average
  // gradients and batch-norm statistics over processes; only rank 0 evaluates and writes.
  parallel::DataParallel* parallel = nullptr;
};

// Runs training to the configured number of epochs; returns the metrics.json content. The caller
// sets the thread count (util::configure_threads(config.threads)); the log records the one in effect.
nlohmann::json train(const config::ExperimentConfig& config, const TrainOptions& options);

// What a run directory holds for `config`; throws UsageError when it holds another experiment.
struct RunState {
  bool started = false;       // RUN/config.yaml exists
  bool complete = false;      // RUN/metrics.json and RUN/checkpoint.pt exist: every epoch trained
  int64_t logged_epochs = 0;  // records in RUN/train_log.jsonl
};
RunState inspect_run(const std::string& run_dir, const config::ExperimentConfig& config);

// Seconds one training step of `config` takes here (penalty and quantization-aware training
// included), on random images, averaged over `steps` after one untimed step (rounded up to
// whole cycles of an amortized penalty).
double measure_step_seconds(const config::ExperimentConfig& config, torch::Device device, int steps);

// What this machine's arithmetic does with `config`'s model: the SHA-1 of one plain training
// step (forward, backward, SGD with momentum) and one evaluation forward of fixed random images,
// at the config's batch sizes and the caller's thread count on `device`. oneDNN and ATen pick
// kernels and blocking by CPU, so two machines (or builds) with the same fingerprint train the
// same config to the same bits, and two with different ones usually do not. It does not depend
// on the config's seed, and it leaves the global generator as it was. About two steps' time.
std::string numerics_fingerprint(const config::ExperimentConfig& config, torch::Device device);

// The checkpoint a run starts from: the trunk it branches from, or init_from's ("" for neither).
std::string starting_checkpoint(const config::ExperimentConfig& config);

// File names inside a run directory.
std::string checkpoint_path(const std::string& run_dir);
std::string config_path(const std::string& run_dir);
std::string log_path(const std::string& run_dir);
std::string metrics_path(const std::string& run_dir);

}  // namespace qrobust::train
