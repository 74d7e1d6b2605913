#include "sweep/sweep.h"

#include <chrono>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "data/batches.h"
#include "quant/bn_fold.h"
#include "quant/calibration.h"
#include "train/checkpoint.h"
#include "train/distributed.h"
#include "train/evaluate.h"
#include "train/trainer.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/progress.h"
#include "util/provenance.h"
#include "util/runtime.h"

namespace qrobust::sweep {
namespace F = torch::nn::functional;

std::vector<std::pair<int, int>> grid(const SweepOptions& options) {
  if (options.weight_bits.empty()) throw UsageError("--weight-bits: the list is empty");
  if (options.act_bits.empty()) throw UsageError("--act-bits: the list is empty");
  for (int bits : options.weight_bits) quant::check_bits(bits, "--weight-bits");
  for (int bits : options.act_bits) quant::check_bits(bits, "--act-bits");
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

namespace {

// Mean over samples of KL(p_float ‖ p_quantized).
double mean_kl(const torch::Tensor& float_logits, const torch::Tensor& quant_logits) {
  const auto p_log = float_logits.log_softmax(1), q_log = quant_logits.log_softmax(1);
  return std::max(0.0, (p_log.exp() * (p_log - q_log)).sum(1).mean().item<double>());  // rounding can go below 0
}

// Gradients of the mean test loss: per layer weight gradient, per point mean per-sample ‖∂CE_i/∂a_i‖₁.
struct FirstOrder {
  std::vector<torch::Tensor> weight_grads;  // CPU, per layer
  std::vector<double> activation_l1;        // per point (0 for a point the loss does not depend on through weights)
};

FirstOrder first_order_gradients(models::ClassifierImpl& model, const data::LabeledImages& split,
                                 const data::DatasetInfo& info, int64_t batch_size, torch::Device device) {
  model.eval();
  const auto& layers = model.quant_layers();
  const auto& points = model.quant_points();
  FirstOrder out;
  for (const auto& layer : layers) out.weight_grads.push_back(torch::zeros_like(layer.weight()));
  out.activation_l1.assign(points.size(), 0.0);
  // Sums stay on the device until the end (no synchronization per batch).
  std::vector<torch::Tensor> activation_sums(points.size(), torch::zeros({}, torch::TensorOptions().device(device)));
  data::BatchOptions options;
  options.batch_size = batch_size;
  data::EpochBatches batches(split, info, options, 0, device);
  const double n = static_cast<double>(split.size());
  model.set_quant_point_mode(models::QuantPointMode::kRecord);
  for (int64_t b = 0; b < batches.size(); ++b) {
    const auto batch = batches.get(b);
    // Sum of per-sample losses / N: summed over batches this is the gradient of the mean loss.
    const auto loss = F::cross_entropy(model.forward(batch.images.requires_grad_(true)), batch.targets,
                                       F::CrossEntropyFuncOptions().reduction(torch::kSum)) / n;
    std::vector<torch::Tensor> inputs;
    for (const auto& layer : layers) inputs.push_back(layer.weight());
    for (const auto& point : points) inputs.push_back(point->recorded());
    const auto grads = torch::autograd::grad({loss}, inputs);
    for (size_t i = 0; i < layers.size(); ++i) out.weight_grads[i] += grads[i];
    for (size_t i = 0; i < points.size(); ++i) activation_sums[i] += grads[layers.size() + i].abs().sum();
  }
  model.set_quant_point_mode(models::QuantPointMode::kOff);
  for (size_t i = 0; i < points.size(); ++i) out.activation_l1[i] = activation_sums[i].item<double>();
  for (auto& g : out.weight_grads) g = g.cpu();
  return out;
}

double first_order_bound(const FirstOrder& gradients, const std::vector<torch::Tensor>& weight_steps,
                         const std::vector<double>& activation_steps) {
  double bound = 0;
  for (size_t i = 0; i < weight_steps.size(); ++i) {
    const auto per_channel = gradients.weight_grads[i].abs().reshape({gradients.weight_grads[i].size(0), -1}).sum(1);
    bound += (weight_steps[i] / 2 * per_channel).sum().item<double>();
  }
  for (size_t i = 0; i < activation_steps.size(); ++i) bound += activation_steps[i] / 2 * gradients.activation_l1[i];
  return bound;
}

std::string bits_label(int bits) { return bits == quant::kFloatBits ? "fp" : std::to_string(bits); }

const data::LabeledImages& evaluation_split(const data::DataSplits& splits, const std::string& split) {
  if (split == "test") return splits.test;
  if (split != "val") throw UsageError("sweep split must be test or val, got \"" + split + "\"");
  if (splits.val.size() == 0) throw UsageError("sweep on the val split: the config holds out no validation images (data.val_size is 0)");
  return splits.val;
}

}  // namespace

nlohmann::json run_sweep(const config::ExperimentConfig& config, const std::string& checkpoint,
                         const SweepOptions& options) {
  grid(options);  // bad lists fail before any work
  const auto start = std::chrono::steady_clock::now();
  const torch::Device device = util::resolve_device(config.device);
  util::configure_threads(config.threads);
  auto model = train::build_model(config, device);
  train::load_checkpoint(checkpoint, *model, nullptr);
  const auto splits = data::load_splits(config.data, config.seed);
  auto result = sweep_model(*model, splits, config, options, device);
  result["header"]["checkpoint"] = checkpoint;
  result["header"]["elapsed_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

nlohmann::json sweep_model(models::ClassifierImpl& model, const data::DataSplits& splits,
                           const config::ExperimentConfig& config, const SweepOptions& options, torch::Device device) {
  const auto configurations = grid(options);
  const auto start = std::chrono::steady_clock::now();
  model.eval();
  const int64_t batch = config.data.eval_batch_size;

  const data::LabeledImages& images = evaluation_split(splits, options.split);
  const auto float_predictions = train::predict(model, images, splits.info, batch, device);
  const auto& float_logits = float_predictions.logits;
  const auto reference = train::score(float_logits, float_predictions.targets);
  if (config.quant.bn_fold) quant::fold_batch_norms(model);
  const auto gradients = first_order_gradients(model, images, splits.info, batch, device);

  quant::PostTrainingQuantizer quantizer(model, config.quant);
  quantizer.calibrate(quant::calibration_batches(splits, config, device));

  const bool with_top5 = splits.info.num_classes >= 100;
  auto row_json = [&](int w, int a, const train::EvalResult& m, double kl, double bound) {
    nlohmann::json row = {{"weight_bits", w}, {"act_bits", a},        {"accuracy", m.accuracy},
                          {"loss", m.loss},   {"kl_to_fp32", kl},     {"first_order_bound", bound},
                          {"loss_increase", m.loss - reference.loss}};
    if (with_top5) row["top5"] = m.top5;
    return row;
  };
  nlohmann::json rows = nlohmann::json::array();
  rows.push_back(row_json(quant::kFloatBits, quant::kFloatBits, reference, 0.0, 0.0));
  rows.back()["config"] = "fp32";
  util::ProgressLine progress("sweep", static_cast<int64_t>(configurations.size()), "configs");
  const int64_t rank = options.parallel ? options.parallel->rank() : 0;
  const int64_t processes = options.parallel ? options.parallel->world_size() : 1;
  for (size_t k = 0; k < configurations.size(); ++k) {
    if (static_cast<int64_t>(k) % processes != rank) continue;
    const auto [w, a] = configurations[k];
    quantizer.apply(w, a);
    const auto logits = train::predict(model, images, splits.info, batch, device).logits;
    const double bound = first_order_bound(gradients, quantizer.weight_steps(w), quantizer.activation_steps(a));
    rows.push_back(row_json(w, a, train::score(logits, float_predictions.targets), mean_kl(float_logits, logits), bound));
    rows.back()["config"] = "w" + bits_label(w) + "a" + bits_label(a);
    quantizer.restore();
    if (options.progress) progress.update(static_cast<int64_t>(k + 1), rows.back()["config"].get<std::string>());
  }
  if (options.progress) progress.finish();
  if (options.parallel) {
    // Rank r computed configurations r, r + P, ...: rank 0 puts the rows back in grid order.
    options.parallel->publish("sweep_rows_" + std::to_string(rank), rows.dump());
    if (rank != 0) return {{"rank", rank}};
    std::vector<nlohmann::json> shares;
    for (int64_t r = 0; r < processes; ++r)
      shares.push_back(nlohmann::json::parse(options.parallel->fetch("sweep_rows_" + std::to_string(r))));
    nlohmann::json ordered = nlohmann::json::array({rows[0]});  // fp32 first
    for (size_t k = 0; k < configurations.size(); ++k) {
      const auto& share = shares[k % static_cast<size_t>(processes)];
      ordered.push_back(share[1 + k / static_cast<size_t>(processes)]);
    }
    rows = std::move(ordered);
  }

  const auto& q = config.quant;
  nlohmann::json header = {
      {"model", config.model.name},
      {"dataset", config.data.dataset},
      {"split", options.split},
      {"samples", images.size()},
      {"weight_granularity", q.weight_granularity},
      {"weight_symmetric", q.weight_symmetric},
      {"act_symmetric", q.act_symmetric},
      {"weight_estimator", q.weight_estimator},
      {"act_estimator", q.act_estimator},
      {"percentile", q.percentile},
      {"first_last", q.first_last},
      {"bn_fold", q.bn_fold},
      {"calibration_samples", std::min(q.calibration_samples, splits.train.size())},
      {"seed", config.seed},
      {"git_sha", util::git_sha()},
      {"libtorch", util::libtorch_version()},
      {"elapsed_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()}};
  return {{"header", header}, {"rows", rows}};
}

void write_sweep(const nlohmann::json& sweep, const std::string& json_path) {
  const auto& rows = sweep["rows"];
  const bool top5 = rows[0].contains("top5");
  std::ostringstream md, csv;
  const auto& h = sweep["header"];
  md << "# " << h["model"].get<std::string>() << " on " << h["dataset"].get<std::string>() << " ("
     << h["split"].get<std::string>() << " split, " << h["samples"] << " images)\n\n"
     << "checkpoint `" << h["checkpoint"].get<std::string>() << "`; weights " << h["weight_granularity"].get<std::string>()
     << (h["weight_symmetric"].get<bool>() ? " symmetric" : " asymmetric") << " " << h["weight_estimator"].get<std::string>()
     << "; activations " << (h["act_symmetric"].get<bool>() ? "symmetric " : "asymmetric ")
     << h["act_estimator"].get<std::string>() << "; first/last layer " << h["first_last"].get<std::string>()
     << "; BN folded " << (h["bn_fold"].get<bool>() ? "yes" : "no") << "; " << h["calibration_samples"] << " calibration images\n\n"
     << "| config | W bits | A bits | accuracy |" << (top5 ? " top-5 |" : "")
     << " loss | KL to fp32 | first-order bound | loss increase |\n"
     << "| --- | --- | --- | --- |" << (top5 ? " --- |" : "") << " --- | --- | --- | --- |\n";
  csv << "config,weight_bits,act_bits,accuracy," << (top5 ? "top5," : "") << "loss,kl_to_fp32,first_order_bound,loss_increase\n";
  md << std::fixed;
  for (const auto& row : rows) {
    md << "| " << row["config"].get<std::string>() << " | " << row["weight_bits"] << " | " << row["act_bits"] << " | "
       << std::setprecision(2) << row["accuracy"].get<double>() << " | ";
    if (top5) md << row["top5"].get<double>() << " | ";
    md << std::setprecision(4) << row["loss"].get<double>() << " | " << row["kl_to_fp32"].get<double>() << " | "
       << row["first_order_bound"].get<double>() << " | " << row["loss_increase"].get<double>() << " |\n";
    csv << row["config"].get<std::string>() << "," << row["weight_bits"] << "," << row["act_bits"] << ","
        << row["accuracy"].dump() << "," << (top5 ? row["top5"].dump() + "," : "") << row["loss"].dump() << ","
        << row["kl_to_fp32"].dump() << "," << row["first_order_bound"].dump() << "," << row["loss_increase"].dump() << "\n";
  }
  const auto stem = std::filesystem::path(json_path).replace_extension("").string();
  util::write_file_atomically(json_path, sweep.dump(2) + "\n");
  util::write_file_atomically(stem + ".md", md.str());
  util::write_file_atomically(stem + ".csv", csv.str());
}

}  // namespace qrobust::sweep
