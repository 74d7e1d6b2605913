#include "train/trainer.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "data/batches.h"
#include "models/complexity.h"
#include "models/registry.h"
#include "quant/quant_aware.h"
#include "regularize/regularizer.h"
#include "train/checkpoint.h"
#include "train/distributed.h"
#include "train/evaluate.h"
#include "train/schedule.h"
#include "util/atomic_file.h"
#include "util/directory_lock.h"
#include "util/provenance.h"
#include "util/runtime.h"

namespace qrobust::train {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string checkpoint_path(const std::string& run_dir) { return run_dir + "/checkpoint.pt"; }
std::string config_path(const std::string& run_dir) { return run_dir + "/config.yaml"; }
std::string log_path(const std::string& run_dir) { return run_dir + "/train_log.jsonl"; }
std::string metrics_path(const std::string& run_dir) { return run_dir + "/metrics.json"; }

models::Classifier build_model(const config::ExperimentConfig& config, torch::Device device) {
  const auto info = data::dataset_info(config.data);
  torch::manual_seed(static_cast<uint64_t>(config.seed));
  auto model = models::make_model(config.model.name, {info.channels, info.height, info.width, info.num_classes},
                                  config.model.width);
  model->to(device);
  return model;
}

namespace {

// Keeps the log records of epochs 1..completed (a kill can leave a record for an epoch whose
// checkpoint was never written).
void trim_log(const std::string& path, int64_t completed) {
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_object() && record.value("epoch", int64_t{0}) <= completed) kept += line + "\n";
  }
  util::write_file_atomically(path, kept);
}

void append_line(const std::string& path, const std::string& line) {
  std::ofstream out(path, std::ios::app);
  out << line << "\n";
  out.flush();
  if (!out) throw RuntimeFailure(path + ": cannot append");
}

// Equal configs up to where the run executes (threads, device), which may change on resume.
bool same_experiment(config::ExperimentConfig saved, const config::ExperimentConfig& requested) {
  saved.threads = requested.threads;
  saved.device = requested.device;
  return config::to_yaml(saved) == config::to_yaml(requested);
}

void require_same_experiment(const std::string& dir, const config::ExperimentConfig& config) {
  if (!same_experiment(config::parse_config(util::read_file(config_path(dir), util::kMaxTextFileBytes), config_path(dir)), config))
    throw UsageError(dir + ": the config differs from the run's config.yaml; resume with the run's own config "
                           "(leave out --config and --set)");
}

// Prepares RUN for a fresh or resumed run; returns the checkpoint to resume from, or "".
std::string prepare_run_dir(const TrainOptions& options, const config::ExperimentConfig& config,
                            const std::string& config_yaml) {
  const std::string& dir = options.run_dir;
  const bool has_checkpoint = fs::exists(checkpoint_path(dir));
  if (options.resume) {
    if (!fs::exists(config_path(dir)))
      throw UsageError(dir + ": nothing to resume (no config.yaml); start the run without --resume");
    require_same_experiment(dir, config);
    return has_checkpoint ? checkpoint_path(dir) : "";
  }
  if (has_checkpoint)
    throw UsageError(dir + ": already holds a run; continue it with --resume or choose another --out");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw RuntimeFailure(dir + ": cannot create run directory: " + ec.message());
  util::write_file_atomically(config_path(dir), config_yaml);
  util::write_file_atomically(log_path(dir), "");
  return "";
}

nlohmann::json eval_json(const EvalResult& result) {
  return {{"loss", result.loss}, {"accuracy", result.accuracy}, {"samples", result.samples}};
}

nlohmann::json gradient_norms_json(const regularize::GradientNorms& norms) {
  nlohmann::json weights = nlohmann::json::object(), activations = nlohmann::json::object();
  for (const auto& [name, value] : norms.weight_l1) weights[name] = value;
  for (const auto& [name, value] : norms.activation_l1) activations[name] = value;
  return {{"weight_l1", weights}, {"activation_l1", activations}};
}

// Quantization-aware training of `config`, or null when it trains in float.
std::unique_ptr<quant::QuantAwareTraining> make_quant_aware(const config::ExperimentConfig& config,
                                                            models::ClassifierImpl& model) {
  if (!config.quant_aware.enabled()) return nullptr;
  return std::make_unique<quant::QuantAwareTraining>(model, config.quant, static_cast<int>(config.quant_aware.weight_bits),
                                                     static_cast<int>(config.quant_aware.act_bits));
}

// One training step: the regularizer's forward and backward, quantized when `quant_aware` is set.
regularize::StepResult training_step(regularize::Regularizer& regularizer, quant::QuantAwareTraining* quant_aware,
                                     models::ClassifierImpl& model, const torch::Tensor& images,
                                     const torch::Tensor& targets) {
  std::optional<quant::QuantAwareTraining::QuantizedStep> quantized;
  if (quant_aware) quantized.emplace(*quant_aware);
  return regularizer.step(model, images, targets);
}

// What is left after a divergence in (0-based) `epoch`.
std::string kept_checkpoint(int64_t epoch) {
  return epoch > 0 ? "; the checkpoint after epoch " + std::to_string(epoch) + " is kept"
                   : std::string("; no checkpoint was written");
}

// The same fixed training images every epoch (no augmentation) for the gradient-norm log.
data::Batch probe_batch(const data::DataSplits& splits, torch::Device device) {
  data::BatchOptions options;
  options.batch_size = std::min<int64_t>(256, splits.train.size());
  return data::EpochBatches(splits.train, splits.info, options, 0, device).get(0);
}

}  // namespace

double measure_step_seconds(const config::ExperimentConfig& config, torch::Device device, int steps) {
  const auto info = data::dataset_info(config.data);
  auto model = build_model(config, device);
  const auto images = torch::randn({config.data.batch_size, info.channels, info.height, info.width},
                                   torch::TensorOptions().device(device));
  const auto targets = torch::randint(0, info.num_classes, {config.data.batch_size},
                                      torch::TensorOptions().dtype(torch::kLong).device(device));
  const auto regularizer = regularize::make_regularizer(config.regularizer);
  const auto quant_aware = make_quant_aware(config, *model);
  model->train();
  if (quant_aware) quant_aware->begin_epoch({images});
  auto step = [&] {
    model->zero_grad();
    training_step(*regularizer, quant_aware.get(), *model, images, targets);
  };
  step();
  // Whole cycles of an amortized penalty, starting where an epoch does.
  const int64_t every = config.regularizer.every();
  const int64_t timed = (steps + every - 1) / every * every;
  regularizer->begin_epoch();
  const auto start = Clock::now();
  for (int64_t i = 0; i < timed; ++i) step();
  return std::chrono::duration<double>(Clock::now() - start).count() / static_cast<double>(timed);
}

RunState inspect_run(const std::string& run_dir, const config::ExperimentConfig& config) {
  RunState state;
  state.started = fs::exists(config_path(run_dir));
  if (!state.started) return state;
  require_same_experiment(run_dir, config);
  state.complete = fs::exists(metrics_path(run_dir)) && fs::exists(checkpoint_path(run_dir));
  std::ifstream log(log_path(run_dir));
  std::string line;
  while (std::getline(log, line)) state.logged_epochs += line.empty() ? 0 : 1;
  return state;
}

nlohmann::json train(const config::ExperimentConfig& config, const TrainOptions& options) {
  const std::string config_yaml = config::to_yaml(config);
  DataParallel* parallel = options.parallel;
  const bool main_process = parallel == nullptr || parallel->is_main();
  // Rank 0 owns the run directory; the others only read the checkpoint it resumes from.
  std::optional<util::DirectoryLock> lock;
  if (main_process) lock.emplace(options.run_dir, "qrobust train");
  const std::string resume_from =
      main_process ? prepare_run_dir(options, config, config_yaml)
                   : (options.resume && fs::exists(checkpoint_path(options.run_dir)) ? checkpoint_path(options.run_dir) : "");
  if (parallel) parallel->barrier();
  const torch::Device device = util::resolve_device(config.device);
  const int threads = util::configure_threads(config.threads);

  const auto splits = data::load_splits(config.data, config.seed);
  auto model = build_model(config, device);
  auto optimizer = make_optimizer(config.train, model->parameters());

  int64_t start_epoch = 0;
  if (!resume_from.empty()) {
    start_epoch = load_checkpoint(resume_from, *model, &optimizer).epoch;
    spdlog::info("resuming {} after epoch {}", options.run_dir, start_epoch);
  } else if (!config.train.branch_from.empty()) {
    start_epoch = load_checkpoint(config.train.branch_from, *model, &optimizer).epoch;
    if (start_epoch >= config.train.last_epoch())
      throw UsageError("train.branch_from: " + config.train.branch_from + " is after epoch " + std::to_string(start_epoch) +
                       ", but this run ends after epoch " + std::to_string(config.train.last_epoch()));
    spdlog::info("continuing the schedule of {} after epoch {}", config.train.branch_from, start_epoch);
  } else if (!config.train.init_from.empty()) {
    load_checkpoint(config.train.init_from, *model, nullptr);
    spdlog::info("initialized weights from {}", config.train.init_from);
  }
  if (options.resume && main_process) trim_log(log_path(options.run_dir), start_epoch);

  data::BatchOptions batch_options;
  batch_options.batch_size = config.data.batch_size;
  batch_options.shuffle = true;
  batch_options.drop_last = true;
  batch_options.augment = config.data.augment;
  batch_options.crop_padding = config.data.crop_padding;
  if (parallel) {
    batch_options.shard = parallel->rank();
    batch_options.shards = parallel->world_size();
  }

  const auto plain = regularize::make_plain();
  const auto penalized = regularize::make_regularizer(config.regularizer);
  const auto probe = main_process ? probe_batch(splits, device) : data::Batch{};  // only rank 0 logs norms
  const auto quant_aware = make_quant_aware(config, *model);
  const auto calibration = quant_aware ? quant::calibration_batches(splits, config.quant.calibration_samples(),
                                                                    static_cast<uint64_t>(config.seed),
                                                                    config.data.eval_batch_size, device)
                                        : std::vector<torch::Tensor>();

  double train_seconds = 0;
  int64_t trained_images = 0;
  nlohmann::json last_record;  // the final epoch's evaluations, reused for metrics.json
  for (int64_t epoch = start_epoch; epoch < config.train.last_epoch(); ++epoch) {
    data::EpochBatches batches(splits.train, splits.info, batch_options,
                               data::mix_seed(static_cast<uint64_t>(config.seed), static_cast<uint64_t>(epoch)), device);
    if (options.observer) options.observer->on_epoch_start(epoch, config.train.epochs, batches.size(), splits.train.size());
    model->train();
    if (quant_aware) quant_aware->begin_epoch(calibration);
    const bool penalty_active =
        config.regularizer.penalty() != regularize::Penalty::kNone && epoch >= config.regularizer.start_epoch();
    regularize::Regularizer& regularizer = penalty_active ? *penalized : *plain;
    regularizer.begin_epoch();
    const auto start = Clock::now();
    double ce_sum = 0, penalty_sum = 0;
    auto correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(device));
    int64_t images = 0;
    for (int64_t step = 0; step < batches.size(); ++step) {
      if (options.stop && options.stop->load())
        throw TrainingInterrupted("interrupted in epoch " + std::to_string(epoch + 1) + "; " +
                                  (epoch > 0 ? "the checkpoint after epoch " + std::to_string(epoch) + " is kept; "
                                             : std::string()) +
                                  "continue with: qrobust train --out " + options.run_dir + " --resume");
      set_learning_rate(optimizer, learning_rate(config.train, epoch, step, batches.size()));
      const auto batch = batches.get(step);
      optimizer.zero_grad();
      const auto result = training_step(regularizer, quant_aware.get(), *model, batch.images, batch.targets);
      const double loss = result.cross_entropy + result.penalty;
      if (!std::isfinite(loss))
        throw TrainingDiverged("training diverged: " +
                               std::string(std::isfinite(result.cross_entropy) ? "the penalty" : "the loss") + " is " +
                               std::to_string(std::isfinite(result.cross_entropy) ? result.penalty : result.cross_entropy) +
                               " at epoch " + std::to_string(epoch + 1) + " step " + std::to_string(step + 1) +
                               kept_checkpoint(epoch) + " (lower train.lr or the penalty's lambda?)");
      if (parallel) parallel->average_gradients(model->parameters());
      optimizer.step();
      const int64_t n = batch.targets.size(0);
      ce_sum += result.cross_entropy * static_cast<double>(n);
      penalty_sum += result.penalty * static_cast<double>(n);
      correct += result.logits.argmax(1).eq(batch.targets).sum();
      images += n;
      if (options.observer) options.observer->on_step(step, images, loss);
    }
    if (parallel) {
      // Epoch totals over all processes, and one set of batch-norm statistics for every replica.
      auto totals = torch::tensor({ce_sum, penalty_sum, static_cast<double>(correct.item<int64_t>()), static_cast<double>(images)},
                                  torch::kDouble);
      parallel->sum(totals);
      ce_sum = totals[0].item<double>();
      penalty_sum = totals[1].item<double>();
      correct.fill_(static_cast<int64_t>(totals[2].item<double>()));
      images = static_cast<int64_t>(totals[3].item<double>());
      torch::NoGradGuard no_grad;
      for (auto& buffer : model->buffers())
        if (buffer.is_floating_point()) {
          parallel->sum(buffer);
          buffer.div_(static_cast<double>(parallel->world_size()));
        }
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    train_seconds += seconds;
    trained_images += images;
    if (!main_process) continue;

    nlohmann::json record = {
        {"epoch", epoch + 1},
        {"lr", learning_rate(config.train, epoch, 0, batches.size())},
        {"train", {{"loss", (ce_sum + penalty_sum) / static_cast<double>(images)},
                   {"cross_entropy", ce_sum / static_cast<double>(images)},
                   {"penalty", penalty_sum / static_cast<double>(images)},
                   {"penalty_active", penalty_active},
                   {"accuracy", 100.0 * static_cast<double>(correct.item<int64_t>()) / static_cast<double>(images)}}},
        {"gradient_norms", gradient_norms_json(regularize::measure_gradient_norms(*model, probe.images, probe.targets))},
        {"test", eval_json(evaluate(*model, splits.test, splits.info, config.data.eval_batch_size, device))},
        {"train_seconds", seconds},
        {"images_per_second", static_cast<double>(images) / seconds}};
    if (splits.val.size() > 0)
      record["val"] = eval_json(evaluate(*model, splits.val, splits.info, config.data.eval_batch_size, device));
    // A finite training loss can hide weights that have blown up (e.g. with frozen batch norms).
    if (!std::isfinite(record["test"]["loss"].get<double>()))
      throw TrainingDiverged("training diverged: the test loss is not finite after epoch " + std::to_string(epoch + 1) +
                             kept_checkpoint(epoch) + " (lower train.lr?)");
    // Log first, checkpoint second: a kill in between leaves a record that resume trims.
    append_line(log_path(options.run_dir), record.dump());
    save_checkpoint(checkpoint_path(options.run_dir), *model, &optimizer, epoch + 1, config_yaml);
    if (options.observer) options.observer->on_epoch_end(record);
    last_record = std::move(record);
  }
  if (!main_process) return {{"rank", parallel->rank()}, {"train_seconds_this_session", train_seconds}};
  // Figures of the final weights: from the last epoch's record, or evaluated when this session
  // trained nothing (a resumed run that was already complete).
  auto final_eval = [&](const char* key, const data::LabeledImages& split) {
    if (last_record.contains(key)) return last_record[key];
    return eval_json(evaluate(*model, split, splits.info, config.data.eval_batch_size, device));
  };

  nlohmann::json metrics = {
      {"name", config.name},
      {"model", config.model.name},
      {"regularizer", config.regularizer.name()},
      {"parameters", model->parameter_count()},
      {"macs_per_image", models::macs_per_image(*model)},
      {"dataset", util::name_of(config.data.dataset, config::kDatasetNames)},
      {"epochs", config.train.epochs},
      {"epochs_trained", config.train.last_epoch()},
      {"test", final_eval("test", splits.test)},
      {"device", device.str()},
      {"threads", threads},
      {"train_seconds_this_session", train_seconds},
      {"train_images_per_second", train_seconds > 0 ? static_cast<double>(trained_images) / train_seconds : 0.0},
      {"checkpoint", checkpoint_path(options.run_dir)},
      {"provenance", util::provenance()}};
  if (splits.val.size() > 0)
    metrics["val"] = final_eval("val", splits.val);
  util::write_file_atomically(metrics_path(options.run_dir), metrics.dump(2) + "\n");
  return metrics;
}

}  // namespace qrobust::train
