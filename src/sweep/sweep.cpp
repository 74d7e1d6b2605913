#include "sweep/sweep.h"

#include <chrono>
#include <optional>
#include <sstream>

#include "data/datasets.h"
#include "io/checkpoint.h"
#include "models/registry.h"
#include "parallel/data_parallel.h"
#include "stats/summary.h"
#include "util/errors.h"
#include "util/progress.h"
#include "util/provenance.h"
#include "util/runtime.h"

namespace qrobust::sweep {

std::vector<std::pair<int, int>> grid(const SweepOptions& options) {
  if (options.weight_bits.empty()) throw UsageError("--weight-bits: the list is empty");
  if (options.act_bits.empty()) throw UsageError("--act-bits: the list is empty");
  for (int bits : options.weight_bits) quant::check_bits(bits, "--weight-bits");
  for (int bits : options.act_bits) quant::check_bits(bits, "--act-bits");
  if (options.calibration_draws < 1 || options.calibration_draws > 1000)
    throw UsageError("--calibration-draws: must be 1..1000, got " + std::to_string(options.calibration_draws));
  std::vector<std::pair<int, int>> out;
  if (options.pairs) {
    if (options.weight_bits.size() != options.act_bits.size())
      throw UsageError("--pairs: --weight-bits and --act-bits need the same length (" +
                       std::to_string(options.weight_bits.size()) + " vs " + std::to_string(options.act_bits.size()) + ")");
    for (size_t i = 0; i < options.weight_bits.size(); ++i) out.emplace_back(options.weight_bits[i], options.act_bits[i]);
  } else {
    for (int w : options.weight_bits)
      for (int a : options.act_bits) out.emplace_back(w, a);
  }
  return out;
}

const data::LabeledImages& evaluation_split(const data::DataSplits& splits, data::Split split) {
  if (split == data::Split::kTrain) throw UsageError("a sweep evaluates the val or the test split, not the training images");
  if (split == data::Split::kVal && splits.val.size() == 0)
    throw UsageError("sweep on the val split: the config holds out no validation images (data.val_size is 0)");
  return splits[split];
}

double mean_kl(const torch::Tensor& float_logits, const torch::Tensor& quant_logits) {
  const auto p_log = float_logits.log_softmax(1), q_log = quant_logits.log_softmax(1);
  return std::max(0.0, (p_log.exp() * (p_log - q_log)).sum(1).mean().item<double>());  // rounding can go below 0
}

PreparedModel prepare_model(models::ClassifierImpl& model, const data::DataSplits& splits,
                            const config::ExperimentConfig& config, data::Split split, int64_t draws,
                            torch::Device device) {
  PreparedModel prepared;
  prepared.images = &evaluation_split(splits, split);
  const int64_t batch = config.data.eval_batch_size;
  model.eval();
  prepared.float_predictions = evaluation::predict(model, *prepared.images, splits.info, batch, device);
  prepared.reference = evaluation::score(prepared.float_predictions.logits, prepared.float_predictions.targets);
  auto quantizer = quant::prepare_post_training(model, splits, config.quant, static_cast<uint64_t>(config.seed), draws,
                                               batch, device);
  prepared.quantizer = std::move(quantizer.quantizer);
  prepared.equalize_seconds = quantizer.equalize_seconds;
  prepared.gradients = first_order_gradients(model, *prepared.images, splits.info, batch, device);
  return prepared;
}

nlohmann::json settings_header(const config::ExperimentConfig& config, const data::DataSplits& splits,
                               data::Split split) {
  // The quant settings flat (as readers of older files expect) and as one object (for comparing).
  nlohmann::json header = config.quant.to_json();
  header["calibration_samples"] = std::min(config.quant.calibration_samples(), splits.train.size());  // as used
  header["quant"] = config.quant.to_json();
  header["model"] = config.model.name();
  header["dataset"] = util::name_of(config.data.dataset, config::kDatasetNames);
  header["split"] = data::split_name(split);
  header["samples"] = evaluation_split(splits, split).size();
  header["seed"] = config.seed;
  return header;
}

models::Classifier load_trained_model(const config::ExperimentConfig& config, const std::string& checkpoint,
                                      torch::Device device) {
  auto model = models::build_model(config.model, data::dataset_info(config.data).input(), config.seed, device);
  io::load_checkpoint(checkpoint, *model, nullptr);
  return model;
}

nlohmann::json analyse_checkpoint(
    const config::ExperimentConfig& config, const std::string& checkpoint,
    const std::function<nlohmann::json(models::ClassifierImpl&, const data::DataSplits&, torch::Device)>& analyse) {
  const auto start = std::chrono::steady_clock::now();
  const torch::Device device = util::resolve_device(config.device);
  auto model = load_trained_model(config, checkpoint, device);
  const auto splits = data::load_splits(config.data, config.seed);
  auto result = analyse(*model, splits, device);
  result["header"]["checkpoint"] = checkpoint;
  result["header"]["elapsed_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

nlohmann::json run_sweep(const config::ExperimentConfig& config, const std::string& checkpoint,
                         const SweepOptions& options) {
  grid(options);  // bad lists fail before any work
  return analyse_checkpoint(config, checkpoint, [&](models::ClassifierImpl& model, const data::DataSplits& splits,
                                                    torch::Device device) {
    return sweep_model(model, splits, config, options, device);
  });
}

namespace {

std::string bits_label(int bits) { return bits == quant::kFloatBits ? "fp" : std::to_string(bits); }
std::string configuration_label(int w, int a) { return "w" + bits_label(w) + "a" + bits_label(a); }

// The float model's row: the reference every quantized row is compared with.
nlohmann::json fp32_row(const evaluation::EvalResult& reference, bool with_top5) {
  nlohmann::json row = {{"config", "fp32"},
                        {"weight_bits", quant::kFloatBits},
                        {"act_bits", quant::kFloatBits},
                        {"accuracy", reference.accuracy},
                        {"accuracy_std", 0.0},
                        {"accuracy_min", reference.accuracy},
                        {"accuracy_max", reference.accuracy},
                        {"accuracy_draws", {reference.accuracy}},
                        {"loss", reference.loss},
                        {"kl_to_fp32", 0.0},
                        {"first_order_bound", 0.0},
                        {"loss_increase", 0.0}};
  if (with_top5) row["top5"] = reference.top5;
  return row;
}

// Rank r computed configurations r, r + P, ... after the fp32 row: every rank publishes its
// rows, and rank 0 gets them all back in grid order (the others get theirs).
nlohmann::json rows_in_grid_order(const nlohmann::json& rows, size_t configurations, parallel::DataParallel& parallel) {
  const int64_t rank = parallel.rank();
  const auto processes = static_cast<size_t>(parallel.world_size());
  parallel.publish("sweep_rows_" + std::to_string(rank), rows.dump());
  if (rank != 0) return rows;
  std::vector<nlohmann::json> shares;
  for (size_t r = 0; r < processes; ++r) shares.push_back(nlohmann::json::parse(parallel.fetch("sweep_rows_" + std::to_string(r))));
  nlohmann::json ordered = nlohmann::json::array({rows[0]});  // fp32 first
  for (size_t k = 0; k < configurations; ++k) ordered.push_back(shares[k % processes][1 + k / processes]);
  return ordered;
}

}  // namespace

nlohmann::json plan_row(PreparedModel& prepared, const data::DataSplits& splits, int64_t eval_batch,
                        const quant::BitPlan& plan, torch::Device device, bool with_top5) {
  auto& quantizer = *prepared.quantizer;
  // The weights are set once, unless the recipe learns them from each draw's images.
  std::optional<quant::WeightQuantizeScope> weights(std::in_place, quantizer, plan.layer_bits, 0);
  const auto weight_steps = quantizer.weight_steps(plan.layer_bits);
  std::vector<double> accuracy, top5, loss, kl, bound;
  const size_t draws = plan.quantizes_activations() || quantizer.weights_depend_on_draw() ? quantizer.draws() : 1;
  for (size_t draw = 0; draw < draws; ++draw) {
    if (draw > 0 && quantizer.weights_depend_on_draw()) {
      weights.reset();
      weights.emplace(quantizer, plan.layer_bits, draw);
    }
    const models::QuantizeScope activations(quantizer.model().quant_points(),
                                            quantizer.activation_quantizers(plan.point_bits, draw));
    const auto logits = evaluation::predict(quantizer.model(), *prepared.images, splits.info, eval_batch, device).logits;
    const auto scored = evaluation::score(logits, prepared.float_predictions.targets);
    accuracy.push_back(scored.accuracy);
    top5.push_back(scored.top5);
    loss.push_back(scored.loss);
    kl.push_back(mean_kl(prepared.float_predictions.logits, logits));
    bound.push_back(
        first_order_bound(prepared.gradients, weight_steps, quantizer.activation_steps(plan.point_bits, draw)).total());
  }
  const auto acc = stats::summarize(accuracy);
  const double mean_loss = stats::summarize(loss).mean;
  nlohmann::json row = {{"accuracy", acc.mean},
                        {"accuracy_std", acc.std},
                        {"accuracy_min", acc.min},
                        {"accuracy_max", acc.max},
                        {"accuracy_draws", accuracy},
                        {"loss", mean_loss},
                        {"kl_to_fp32", stats::summarize(kl).mean},
                        {"first_order_bound", stats::summarize(bound).mean},
                        {"loss_increase", mean_loss - prepared.reference.loss}};
  if (with_top5) row["top5"] = stats::summarize(top5).mean;
  return row;
}

nlohmann::json recipe_cost_json(const PreparedModel& prepared) {
  const auto& cost = prepared.quantizer->recipe_cost();
  return {{"equalize_seconds", prepared.equalize_seconds},
          {"capture_seconds", cost.capture_seconds},
          {"adaround_seconds", cost.adaround_seconds},
          {"bias_correction_seconds", cost.bias_correction_seconds},
          {"layers_learned", cost.layers}};
}

nlohmann::json sweep_model(models::ClassifierImpl& model, const data::DataSplits& splits,
                           const config::ExperimentConfig& config, const SweepOptions& options, torch::Device device) {
  const auto configurations = grid(options);
  const auto start = std::chrono::steady_clock::now();
  auto prepared = prepare_model(model, splits, config, options.split, options.calibration_draws, device);
  const auto& reference = prepared.reference;
  const bool with_top5 = splits.info.num_classes >= 100;

  nlohmann::json rows = nlohmann::json::array({fp32_row(reference, with_top5)});
  util::ProgressLine progress("sweep", static_cast<int64_t>(configurations.size()), "configs");
  const int64_t rank = options.parallel ? options.parallel->rank() : 0;
  const int64_t processes = options.parallel ? options.parallel->world_size() : 1;
  for (size_t k = 0; k < configurations.size(); ++k) {
    if (static_cast<int64_t>(k) % processes != rank) continue;
    const auto [w, a] = configurations[k];
    if (options.stop && options.stop->load())
      throw SweepInterrupted("interrupted before configuration " + configuration_label(w, a) + " of the sweep");
    auto row = plan_row(prepared, splits, config.data.eval_batch_size, prepared.quantizer->plan(w, a), device, with_top5);
    row["config"] = configuration_label(w, a);
    row["weight_bits"] = w;
    row["act_bits"] = a;
    rows.push_back(std::move(row));
    if (options.progress) progress.update(static_cast<int64_t>(k + 1), rows.back()["config"].get<std::string>());
  }
  if (options.progress) progress.finish();
  if (options.parallel) {
    rows = rows_in_grid_order(rows, configurations.size(), *options.parallel);
    if (rank != 0) return {{"rank", rank}};
  }

  auto header = settings_header(config, splits, options.split);
  header["calibration_draws"] = options.calibration_draws;
  header["recipe"] = config.quant.recipe();
  header["recipe_cost"] = recipe_cost_json(prepared);
  header["git_sha"] = util::git_sha();
  header["libtorch"] = util::libtorch_version();
  header["elapsed_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {{"header", header}, {"rows", rows}};
}

}  // namespace qrobust::sweep
