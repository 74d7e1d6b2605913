#pragma once
// `qrobust sweep-bits`: the accuracy of one trained float model at every (weight bits,
// activation bits) configuration of a grid. The model is BN-folded and calibrated once per
// calibration draw; each configuration quantizes the weights once and evaluates the test (or
// val) split with activation fake quantization on, once per draw. Each row carries the mean
// over draws (and their spread), the KL divergence from the float predictions and the paper's
// first-order bound on the loss increase (sweep/first_order.h).
#include <torch/torch.h>

#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "data/datasets.h"
#include "evaluation/evaluate.h"
#include "models/classifier.h"
#include "quant/calibration.h"
#include "sweep/first_order.h"
#include "util/errors.h"

namespace qrobust::parallel {
class DataParallel;
}

namespace qrobust::sweep {

struct SweepOptions {
  std::vector<int> weight_bits = {8, 6, 5, 4, 3, 2};
  std::vector<int> act_bits = {32, 8, 6, 5, 4, 3};
  bool pairs = false;  // zip the two lists instead of the full grid
  data::Split split = data::Split::kTest;  // or kVal (the held-out training images, for choosing hyperparameters)
  int64_t calibration_draws = 1;  // independent seeded calibration samples; rows report their mean and spread
  bool progress = true;
  const std::atomic<bool>* stop = nullptr;  // optional; checked before every configuration
  // Optional (parallel/data_parallel.h): configurations are shared out over the processes and the
  // rows gathered on rank 0, the only one that gets the full document.
  parallel::DataParallel* parallel = nullptr;
};

// A stop was requested (SweepOptions::stop, SensitivityOptions::stop) before the sweep or the
// sensitivity analysis finished; nothing is returned.
class SweepInterrupted : public RuntimeFailure {
 public:
  using RuntimeFailure::RuntimeFailure;
};

// The (weight bits, activation bits) configurations, after checking the lists and the draw count.
std::vector<std::pair<int, int>> grid(const SweepOptions& options);

// The split a sweep evaluates (val or test); train, or a val split with no images, is a usage error.
const data::LabeledImages& evaluation_split(const data::DataSplits& splits, data::Split split);

// A trained float model made ready for post-training quantization on one split: its float
// predictions, then BN-folded (when the config folds) and equalized (when the recipe says so),
// the first-order gradients of its mean loss, and `draws` calibration draws. The recipe's
// weight steps run later, when a plan first asks for its weights. The sweep and the sensitivity analysis start here.
struct PreparedModel {
  const data::LabeledImages* images = nullptr;
  evaluation::Predictions float_predictions;
  evaluation::EvalResult reference;  // float accuracy and loss
  FirstOrder gradients;
  std::unique_ptr<quant::PostTrainingQuantizer> quantizer;
  double equalize_seconds = 0;
};
PreparedModel prepare_model(models::ClassifierImpl& model, const data::DataSplits& splits,
                            const config::ExperimentConfig& config, data::Split split, int64_t draws,
                            torch::Device device);

// The figures of `plan` on the prepared split, averaged over the calibration draws (one
// evaluation when neither activations nor the recipe's weights depend on the draw): accuracy
// (mean, std, min, max, per draw), loss, KL divergence from the float predictions, the
// first-order bound and the loss increase. A sweep row is this for a uniform plan.
nlohmann::json plan_row(PreparedModel& prepared, const data::DataSplits& splits, int64_t eval_batch,
                        const quant::BitPlan& plan, torch::Device device, bool with_top5);

// Seconds each recipe step took so far (equalization, capturing layer inputs, AdaRound, bias
// correction) and how many layers were learned: the `recipe_cost` of result headers.
nlohmann::json recipe_cost_json(const PreparedModel& prepared);

// What a sweep or sensitivity document's header says of the model, data and quantizer (no
// timing or provenance): model, dataset, split, samples, the quant settings, seed.
nlohmann::json settings_header(const config::ExperimentConfig& config, const data::DataSplits& splits,
                               data::Split split);

// Mean over samples of KL(p_float ‖ p_quantized).
double mean_kl(const torch::Tensor& float_logits, const torch::Tensor& quant_logits);

// The model `config` describes with the weights of `checkpoint`, on `device`.
models::Classifier load_trained_model(const config::ExperimentConfig& config, const std::string& checkpoint,
                                      torch::Device device);

// Loads `checkpoint` into the model `config` describes, and the config's data splits, on the
// configured device and the thread count the caller set (util::configure_threads); returns
// analyse(model, splits, device) with the header's `checkpoint` and `elapsed_seconds` filled in.
nlohmann::json analyse_checkpoint(
    const config::ExperimentConfig& config, const std::string& checkpoint,
    const std::function<nlohmann::json(models::ClassifierImpl&, const data::DataSplits&, torch::Device)>& analyse);

// Runs the sweep of `checkpoint` (trained with `config`); returns the JSON document.
nlohmann::json run_sweep(const config::ExperimentConfig& config, const std::string& checkpoint,
                         const SweepOptions& options);

// The same for a model already built and loaded (BN-folded and calibrated in place: pass a
// copy you can spare); the header has no checkpoint field.
nlohmann::json sweep_model(models::ClassifierImpl& model, const data::DataSplits& splits,
                           const config::ExperimentConfig& config, const SweepOptions& options, torch::Device device);

}  // namespace qrobust::sweep
