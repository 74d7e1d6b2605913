#include "train/trainer.h"

#include <c10/util/hash.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "data/batches.h"
#include "data/datasets.h"
#include "evaluation/evaluate.h"
#include "io/checkpoint.h"
#include "models/complexity.h"
#include "models/registry.h"
#include "parallel/data_parallel.h"
#include "quant/quant_aware.h"
#include "regularize/regularizer.h"
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

// Equal configs up to where the run executes (threads, device), which may change on resume, and
// the mixed-precision search, which training does not read.
bool same_experiment(config::ExperimentConfig saved, const config::ExperimentConfig& requested) {
  saved.threads = requested.threads;
  saved.device = requested.device;
  saved.mixed_precision = requested.mixed_precision;
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
    if (has_checkpoint) return checkpoint_path(dir);
    // Trained again from its first epoch: the metrics there describe other weights, and kept
    // beside a new partial checkpoint they would make the run look complete.
    fs::remove(metrics_path(dir));
    return "";
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

nlohmann::json eval_json(const evaluation::EvalResult& result) {
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

// The weights (and momentum) a run starts from: its own checkpoint when it resumes, the trunk
// it branches from, or init_from's weights; returns the epochs already completed.
int64_t load_starting_point(const config::ExperimentConfig& config, const std::string& resume_from,
                            const std::string& run_dir, models::ClassifierImpl& model, torch::optim::SGD& optimizer) {
  if (!resume_from.empty()) {
    const int64_t epoch = io::load_checkpoint(resume_from, model, &optimizer).epoch;
    spdlog::info("resuming {} after epoch {}", run_dir, epoch);
    return epoch;
  }
  if (!config.train.branch_from.empty()) {
    const int64_t epoch = io::load_checkpoint(config.train.branch_from, model, &optimizer).epoch;
    if (epoch >= config.train.last_epoch())
      throw UsageError("train.branch_from: " + config.train.branch_from + " is after epoch " + std::to_string(epoch) +
                       ", but this run ends after epoch " + std::to_string(config.train.last_epoch()));
    spdlog::info("continuing the schedule of {} after epoch {}", config.train.branch_from, epoch);
    return epoch;
  }
  if (!config.train.init_from.empty()) {
    io::load_checkpoint(config.train.init_from, model, nullptr);
    spdlog::info("initialized weights from {}", config.train.init_from);
  }
  return 0;
}

// Shuffled full batches, augmented as configured; with data parallelism, this process's shard.
data::BatchOptions training_batch_options(const config::DataConfig& data_config, const parallel::DataParallel* parallel) {
  data::BatchOptions options;
  options.batch_size = data_config.batch_size;
  options.shuffle = true;
  options.drop_last = true;
  options.augment = data_config.augment;
  options.crop_padding = data_config.crop_padding;
  if (parallel) {
    options.shard = parallel->rank();
    options.shards = parallel->world_size();
  }
  return options;
}

// What every epoch of a run trains with.
struct Training {
  const config::ExperimentConfig& config;
  const TrainOptions& options;
  models::ClassifierImpl& model;
  torch::optim::SGD& optimizer;
  quant::QuantAwareTraining* quant_aware;  // null: float training
  torch::Device device;
};

// One epoch's sums over the images trained on.
struct EpochTotals {
  double cross_entropy = 0, penalty = 0;  // summed over images
  torch::Tensor correct;                  // int64 on the training device, read once per epoch
  int64_t images = 0;

  // The totals of all processes, on every process.
  void sum_over(parallel::DataParallel& parallel) {
    auto totals = torch::tensor(
        {cross_entropy, penalty, static_cast<double>(correct.item<int64_t>()), static_cast<double>(images)}, torch::kDouble);
    parallel.sum(totals);
    cross_entropy = totals[0].item<double>();
    penalty = totals[1].item<double>();
    correct.fill_(static_cast<int64_t>(totals[2].item<double>()));
    images = static_cast<int64_t>(totals[3].item<double>());
  }

  nlohmann::json json(bool penalty_active) const {
    const auto n = static_cast<double>(images);
    return {{"loss", (cross_entropy + penalty) / n},
            {"cross_entropy", cross_entropy / n},
            {"penalty", penalty / n},
            {"penalty_active", penalty_active},
            {"accuracy", 100.0 * static_cast<double>(correct.item<int64_t>()) / n}};
  }
};

// Every replica's floating-point buffers (batch-norm statistics) become their mean over processes.
void average_buffers(models::ClassifierImpl& model, parallel::DataParallel& parallel) {
  torch::NoGradGuard no_grad;
  for (auto& buffer : model.buffers())
    if (buffer.is_floating_point()) {
      parallel.sum(buffer);
      buffer.div_(static_cast<double>(parallel.world_size()));
    }
}

// The steps of (0-based) `epoch`: learning rate, forward, backward (penalty included), gradient
// averaging over processes, SGD. Throws TrainingInterrupted on a stop request and
// TrainingDiverged on a non-finite loss.
EpochTotals train_epoch(const Training& run, int64_t epoch, data::EpochBatches& batches, regularize::Regularizer& regularizer) {
  const auto& options = run.options;
  EpochTotals totals;
  totals.correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(run.device));
  for (int64_t step = 0; step < batches.size(); ++step) {
    if (options.stop && options.stop->load())
      throw TrainingInterrupted("interrupted in epoch " + std::to_string(epoch + 1) + "; " +
                                (epoch > 0 ? "the checkpoint after epoch " + std::to_string(epoch) + " is kept; "
                                           : std::string()) +
                                "continue with: qrobust train --out " + options.run_dir + " --resume");
    set_learning_rate(run.optimizer, learning_rate(run.config.train, epoch, step, batches.size()));
    const auto batch = batches.get(step);
    run.optimizer.zero_grad();
    const auto result = training_step(regularizer, run.quant_aware, run.model, batch.images, batch.targets);
    const double loss = result.cross_entropy + result.penalty;
    if (!std::isfinite(loss))
      throw TrainingDiverged("training diverged: " +
                             std::string(std::isfinite(result.cross_entropy) ? "the penalty" : "the loss") + " is " +
                             std::to_string(std::isfinite(result.cross_entropy) ? result.penalty : result.cross_entropy) +
                             " at epoch " + std::to_string(epoch + 1) + " step " + std::to_string(step + 1) +
                             kept_checkpoint(epoch) + " (lower train.lr or the penalty's lambda?)");
    if (options.parallel) options.parallel->average_gradients(run.model.parameters());
    run.optimizer.step();
    const int64_t n = batch.targets.size(0);
    totals.cross_entropy += result.cross_entropy * static_cast<double>(n);
    totals.penalty += result.penalty * static_cast<double>(n);
    totals.correct += result.logits.argmax(1).eq(batch.targets).sum();
    totals.images += n;
    if (options.observer) options.observer->on_step(step, totals.images, loss);
  }
  return totals;
}

// metrics.json without the final evaluations: what was trained, where, and how fast.
nlohmann::json run_metrics(const config::ExperimentConfig& config, models::ClassifierImpl& model, torch::Device device,
                           const std::string& run_dir, double train_seconds, int64_t trained_images) {
  return {{"name", config.name},
          {"model", config.model.name()},
          {"regularizer", config.regularizer.name()},
          {"parameters", model.parameter_count()},
          {"macs_per_image", models::macs_per_image(model)},
          {"dataset", util::name_of(config.data.dataset, config::kDatasetNames)},
          {"epochs", config.train.epochs},
          {"epochs_trained", config.train.last_epoch()},
          {"device", device.str()},
          {"threads", at::get_num_threads()},
          {"train_seconds_this_session", train_seconds},
          {"train_images_per_second", train_seconds > 0 ? static_cast<double>(trained_images) / train_seconds : 0.0},
          {"checkpoint", checkpoint_path(run_dir)},
          {"provenance", util::provenance()}};
}

}  // namespace

double measure_step_seconds(const config::ExperimentConfig& config, torch::Device device, int steps) {
  const auto info = data::dataset_info(config.data);
  auto model = models::build_model(config.model, info.input(), config.seed, device);
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

std::string numerics_fingerprint(const config::ExperimentConfig& config, torch::Device device) {
  const auto info = data::dataset_info(config.data);
  auto model = models::build_model(config.model, info.input(), /*seed=*/0, device);
  auto generator = at::detail::createCPUGenerator(0);
  auto random_images = [&](int64_t batch) {
    return torch::randn({batch, info.channels, info.height, info.width}, generator).to(device);
  };
  const auto images = random_images(config.data.batch_size);
  const auto targets = torch::randint(0, info.num_classes, {config.data.batch_size}, generator, torch::kLong).to(device);
  auto optimizer = make_optimizer(config.train, model->parameters());
  set_learning_rate(optimizer, config.train.lr);
  model->train();
  optimizer.zero_grad();
  const auto step = regularize::make_plain()->step(*model, images, targets);
  optimizer.step();
  // The logits and gradients of the step, the weights after it, and the evaluation's logits.
  std::vector<torch::Tensor> outputs = {step.logits.detach()};
  for (const auto& parameter : model->parameters()) {
    if (parameter.grad().defined()) outputs.push_back(parameter.grad());
    outputs.push_back(parameter.detach());
  }
  model->eval();
  const torch::NoGradGuard no_grad;
  outputs.push_back(model->forward(random_images(config.data.eval_batch_size)));
  std::string bytes;
  for (const auto& output : outputs) {
    const auto values = output.to(torch::kCPU, torch::kFloat).contiguous();
    bytes.append(static_cast<const char*>(values.data_ptr()), static_cast<size_t>(values.nbytes()));
  }
  return c10::sha1(bytes).str();
}

std::string starting_checkpoint(const config::ExperimentConfig& config) {
  return config.train.branch_from.empty() ? config.train.init_from : config.train.branch_from;
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
  parallel::DataParallel* parallel = options.parallel;
  const bool main_process = parallel == nullptr || parallel->is_main();
  // Rank 0 owns the run directory; the others only read the checkpoint it resumes from.
  std::optional<util::DirectoryLock> lock;
  if (main_process) lock.emplace(options.run_dir, "qrobust train");
  const std::string resume_from =
      main_process ? prepare_run_dir(options, config, config_yaml)
                   : (options.resume && fs::exists(checkpoint_path(options.run_dir)) ? checkpoint_path(options.run_dir) : "");
  if (parallel) parallel->barrier();
  const torch::Device device = util::resolve_device(config.device);

  const auto splits = data::load_splits(config.data, config.seed);
  auto model = models::build_model(config.model, splits.info.input(), config.seed, device);
  auto optimizer = make_optimizer(config.train, model->parameters());
  const int64_t start_epoch = load_starting_point(config, resume_from, options.run_dir, *model, optimizer);
  if (options.resume && main_process) trim_log(log_path(options.run_dir), start_epoch);

  const auto batch_options = training_batch_options(config.data, parallel);
  const auto plain = regularize::make_plain();
  const auto penalized = regularize::make_regularizer(config.regularizer);
  const auto probe = main_process ? probe_batch(splits, device) : data::Batch{};  // only rank 0 logs norms
  const auto quant_aware = make_quant_aware(config, *model);
  const auto calibration = quant_aware ? quant::calibration_batches(splits, config.quant.calibration_samples(),
                                                                    static_cast<uint64_t>(config.seed),
                                                                    config.data.eval_batch_size, device)
                                        : std::vector<torch::Tensor>();
  const Training run{config, options, *model, optimizer, quant_aware.get(), device};
  auto evaluate = [&](const data::LabeledImages& split) {
    return eval_json(evaluation::evaluate(*model, split, splits.info, config.data.eval_batch_size, device));
  };

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
    auto totals = train_epoch(run, epoch, batches, regularizer);
    if (parallel) {
      totals.sum_over(*parallel);
      average_buffers(*model, *parallel);
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    train_seconds += seconds;
    trained_images += totals.images;
    if (!main_process) continue;

    nlohmann::json record = {
        {"epoch", epoch + 1},
        {"lr", learning_rate(config.train, epoch, 0, batches.size())},
        {"train", totals.json(penalty_active)},
        {"gradient_norms", gradient_norms_json(regularize::measure_gradient_norms(*model, probe.images, probe.targets))},
        {"test", evaluate(splits.test)},
        {"train_seconds", seconds},
        {"images_per_second", static_cast<double>(totals.images) / seconds}};
    if (splits.val.size() > 0) record["val"] = evaluate(splits.val);
    // A finite training loss can hide weights that have blown up (e.g. with frozen batch norms).
    if (!std::isfinite(record["test"]["loss"].get<double>()))
      throw TrainingDiverged("training diverged: the test loss is not finite after epoch " + std::to_string(epoch + 1) +
                             kept_checkpoint(epoch) + " (lower train.lr?)");
    // Log first, checkpoint second: a kill in between leaves a record that resume trims.
    append_line(log_path(options.run_dir), record.dump());
    io::save_checkpoint(checkpoint_path(options.run_dir), *model, &optimizer, epoch + 1, config_yaml);
    if (options.observer) options.observer->on_epoch_end(record);
    last_record = std::move(record);
  }
  if (!main_process) return {{"rank", parallel->rank()}, {"train_seconds_this_session", train_seconds}};

  // Figures of the final weights: from the last epoch's record, or evaluated when this session
  // trained nothing (a resumed run that was already complete).
  auto final_eval = [&](const char* key, const data::LabeledImages& split) {
    return last_record.contains(key) ? last_record[key] : evaluate(split);
  };
  auto metrics = run_metrics(config, *model, device, options.run_dir, train_seconds, trained_images);
  metrics["test"] = final_eval("test", splits.test);
  if (splits.val.size() > 0) metrics["val"] = final_eval("val", splits.val);
  // Which weights these are and which they grew from: an experiment keeps a variant only while
  // its trunk is the seed's baseline as it is now (experiment/experiment.h).
  metrics["checkpoint_sha1"] = util::file_sha1(checkpoint_path(options.run_dir));
  if (const auto trunk = starting_checkpoint(config); !trunk.empty()) metrics["trunk_sha1"] = util::file_sha1(trunk);
  // Whether another machine can rebuild these bits: the experiment's plan compares fingerprints.
  metrics["numerics_fingerprint"] = numerics_fingerprint(config, device);
  util::write_file_atomically(metrics_path(options.run_dir), metrics.dump(2) + "\n");
  return metrics;
}

}  // namespace qrobust::train
