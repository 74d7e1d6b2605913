#pragma once
// `qrobust sweep-bits`: the accuracy of one trained float model at every (weight bits,
// activation bits) configuration of a grid. The model is BN-folded and calibrated once; each
// configuration quantizes the weights once and evaluates the test (or val) split with activation fake
// quantization on. Each row also carries the KL divergence from the float predictions and the
// paper's first-order bound on the loss increase,
//   Σ_l Σ_c (δ_lc/2)·‖∂L/∂W_lc‖₁ + Σ_p (δ_p/2)·‖∂L/∂a_p‖₁,
// with the gradients of the float model's mean test loss (per output channel c of layer l,
// and per quantization point p as the mean of per-sample norms).
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "data/datasets.h"
#include "models/classifier.h"

namespace qrobust::train {
class DataParallel;
}

namespace qrobust::sweep {

struct SweepOptions {
  std::vector<int> weight_bits = {8, 6, 5, 4, 3, 2};
  std::vector<int> act_bits = {32, 8, 6, 5, 4, 3};
  bool pairs = false;  // zip the two lists instead of the full grid
  std::string split = "test";  // test | val (the held-out training images, for choosing hyperparameters)
  bool progress = true;
  // Optional (train/distributed.h): configurations are shared out over the processes and the
  // rows gathered on rank 0, the only one that gets the full document.
  train::DataParallel* parallel = nullptr;
};

// The (weight bits, activation bits) configurations, after checking the lists.
std::vector<std::pair<int, int>> grid(const SweepOptions& options);

// Runs the sweep of `checkpoint` (trained with `config`); returns the JSON document.
nlohmann::json run_sweep(const config::ExperimentConfig& config, const std::string& checkpoint,
                         const SweepOptions& options);

// The same for a model already built and loaded (BN-folded and calibrated in place: pass a
// copy you can spare); the header has no checkpoint field.
nlohmann::json sweep_model(models::ClassifierImpl& model, const data::DataSplits& splits,
                           const config::ExperimentConfig& config, const SweepOptions& options, torch::Device device);

// Writes FILE.json and, beside it, FILE.md and FILE.csv (each atomically).
void write_sweep(const nlohmann::json& sweep, const std::string& json_path);

}  // namespace qrobust::sweep
