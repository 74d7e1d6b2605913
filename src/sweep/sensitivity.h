#pragma once
// `qrobust sensitivity`: which layer or activation breaks at a bit-width (in the manner of
// AIMET's QuantAnalyzer). For every quantizable layer's weights and every quantization point,
// on the BN-folded, calibrated model (sweep.h's prepare_model):
//   one in    accuracy and loss with only that element quantized at `bits`
//   one out   accuracy and loss with every element quantized at `bits` except it
//   bound     that element's term of the first-order bound (sweep/first_order.h)
//   increase  its actual loss increase: one-in loss − float loss
// Bit-widths follow the config's first/last policy, as in a sweep at bits/bits: with
// `first_last: int8` the first and last layer and their inputs are quantized at 8 bits.
#include <atomic>
#include <nlohmann/json.hpp>
#include <string>

#include "config/config.h"
#include "data/datasets.h"
#include "models/classifier.h"

namespace qrobust::sweep {

struct SensitivityOptions {
  int bits = 4;
  data::Split split = data::Split::kTest;  // or kVal
  bool progress = true;
  const std::atomic<bool>* stop = nullptr;  // optional; checked before every element (SweepInterrupted)
};

nlohmann::json run_sensitivity(const config::ExperimentConfig& config, const std::string& checkpoint,
                               const SensitivityOptions& options);

// The same for a model already built and loaded (BN-folded and calibrated in place).
nlohmann::json sensitivity_model(models::ClassifierImpl& model, const data::DataSplits& splits,
                                 const config::ExperimentConfig& config, const SensitivityOptions& options,
                                 torch::Device device);

}  // namespace qrobust::sweep
