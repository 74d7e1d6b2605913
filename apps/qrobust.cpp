// qrobust command-line interface: parses flags into option structs and calls the library.
// Exit codes: 0 success, 1 runtime failure, 2 usage or config error.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <new>

#include "bench/bench.h"
#include "config/config.h"
#include "config/reference.h"
#include "console_observer.h"
#include "data/datasets.h"
#include "deploy/export.h"
#include "evaluation/evaluate.h"
#include "experiment/experiment.h"
#include "io/checkpoint.h"
#include "io/torchvision_import.h"
#include "mixed_precision/search.h"
#include "models/registry.h"
#include "parallel/data_parallel.h"
#include "quant/quantizer.h"
#include "report/mixed_precision.h"
#include "report/sensitivity.h"
#include "report/sweep_files.h"
#include "sweep/sensitivity.h"
#include "sweep/sweep.h"
#include "train/trainer.h"
#include "util/atomic_file.h"
#include "util/directory_lock.h"
#include "util/errors.h"
#include "util/provenance.h"
#include "util/runtime.h"

namespace {
using namespace qrobust;

std::atomic<bool> g_stop_requested{false};

// First SIGINT/SIGTERM asks the trainer to stop between steps; a second one kills.
void request_stop(int signal) {
  g_stop_requested = true;
  std::signal(signal, SIG_DFL);
}

// Flags shared by every command that reads an experiment config.
struct ConfigFlags {
  std::string config_file;
  std::vector<std::string> overrides;
  int64_t threads = 0;  // 0: keep the config's value
};

struct TrainCommand {
  ConfigFlags config;
  std::string out_dir;
  bool resume = false;
  parallel::DataParallel* parallel = nullptr;  // launched as one of several processes
};

struct EvalCommand {
  ConfigFlags config;
  std::string run_dir;
  std::string checkpoint;
  data::Split split = data::Split::kTest;
};

// A flag that names an enum value as configs do: the name becomes the value, and anything else
// is a usage error that lists the names.
template <class E, size_t N>
CLI::Validator one_of(const util::Names<E, N>& names) {
  std::string listed;
  for (const auto& name : util::all_names(names)) listed += (listed.empty() ? "" : ", ") + name;
  return CLI::Validator(
      [names, listed](std::string& input) -> std::string {
        const auto value = util::value_of(input, names);
        if (!value) return "expected one of " + listed + ", got \"" + input + "\"";
        input = std::to_string(static_cast<int>(*value));
        return "";
      },
      "{" + listed + "}");
}

void add_config_flags(CLI::App* command, ConfigFlags& flags) {
  command->add_option("--config", flags.config_file, "run config (YAML, e.g. configs/cifar10_resnet20.yaml)")->group("Config");
  command->add_option("--set", flags.overrides, "override a config value, e.g. --set train.lr=0.05 (repeatable)")
      ->group("Config")
      ->take_all();
  command->add_option("--threads", flags.threads, "CPU threads (default: the config's `threads`, auto = all cores)")
      ->group("Execution")
      ->check(CLI::PositiveNumber);
}

// --threads over the config's, which then becomes the process's thread count.
void apply_threads(config::ExperimentConfig& config, const ConfigFlags& flags) {
  if (flags.threads > 0) config.threads = flags.threads;
  util::configure_threads(config.threads);
}

config::ExperimentConfig load_with_flags(const std::string& file, const ConfigFlags& flags) {
  auto config = config::load_config(file, flags.overrides);
  apply_threads(config, flags);
  return config;
}

// The config a trained model is used with: --config if given, else the one embedded in the
// checkpoint; --set and --threads apply either way.
config::ExperimentConfig config_for_checkpoint(const std::string& checkpoint, const ConfigFlags& flags) {
  if (!flags.config_file.empty()) return load_with_flags(flags.config_file, flags);
  auto config = config::parse_config(io::read_checkpoint_info(checkpoint).config_yaml,
                                     checkpoint + " (embedded config)", flags.overrides);
  apply_threads(config, flags);
  return config;
}

std::string checkpoint_of(const std::string& run_dir, const std::string& checkpoint, const std::string& command) {
  if (run_dir.empty() == checkpoint.empty())
    throw UsageError(command + ": give exactly one of --run DIR or --checkpoint FILE");
  return checkpoint.empty() ? train::checkpoint_path(run_dir) : checkpoint;
}

int run_train(const TrainCommand& command) {
  const bool from_run = command.config.config_file.empty();
  if (from_run && !command.resume) throw UsageError("train: --config is required (or --out RUN --resume)");
  if (from_run && command.out_dir.empty()) throw UsageError("train: --resume without --config needs --out RUN");
  const auto config = load_with_flags(from_run ? train::config_path(command.out_dir) : command.config.config_file,
                                      command.config);
  train::TrainOptions options;
  options.run_dir = command.out_dir.empty() ? "runs/" + config.name : command.out_dir;
  options.resume = command.resume;
  options.parallel = command.parallel;
  const bool main_process = command.parallel == nullptr || command.parallel->is_main();
  cli::ConsoleObserver observer;
  if (main_process) options.observer = &observer;
  options.stop = &g_stop_requested;
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  if (command.parallel)
    spdlog::info("rank {} of {}", command.parallel->rank(), command.parallel->world_size());
  if (main_process)
    spdlog::info("training {} ({} on {}, penalty {}) into {}", config.name, config.model.name(),
                 util::name_of(config.data.dataset, config::kDatasetNames),
                 config.regularizer.describe(), options.run_dir);
  const auto metrics = train::train(config, options);
  if (!main_process) return 0;
  spdlog::info("done: test accuracy {:.2f}% -> {}", metrics["test"]["accuracy"].get<double>(),
               train::metrics_path(options.run_dir));
  return 0;
}

int run_eval(const EvalCommand& command) {
  const std::string checkpoint = checkpoint_of(command.run_dir, command.checkpoint, "eval");
  const auto config = config_for_checkpoint(checkpoint, command.config);
  const auto device = util::resolve_device(config.device);
  auto model = models::build_model(config.model, data::dataset_info(config.data).input(), config.seed, device);
  const auto info = io::load_checkpoint(checkpoint, *model, nullptr);
  const auto splits = data::load_splits(config.data, config.seed);
  const std::string split_name = data::split_name(command.split);
  const auto& split = splits[command.split];
  if (split.size() == 0) throw UsageError("eval: the " + split_name + " split is empty (set data.val_size)");
  const auto start = std::chrono::steady_clock::now();
  const auto result = evaluation::evaluate(*model, split, splits.info, config.data.eval_batch_size, device);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const nlohmann::json out = {{"checkpoint", checkpoint}, {"model", config.model.name()},  {"dataset", util::name_of(config.data.dataset, config::kDatasetNames)},
                              {"epoch", info.epoch},      {"split", split_name},      {"loss", result.loss},
                              {"accuracy", result.accuracy}, {"samples", result.samples},
                              {"batch", config.data.eval_batch_size}, {"seconds", seconds},
                              {"images_per_second", static_cast<double>(result.samples) / seconds}};
  std::cout << out.dump(2) << std::endl;
  return 0;
}

// The folder an --out file goes into, locked for this process while it writes there.
std::unique_ptr<util::DirectoryLock> lock_output_folder(const std::string& out, const std::string& command) {
  const auto out_dir = std::filesystem::path(out).parent_path();
  std::error_code ec;
  if (!out_dir.empty()) std::filesystem::create_directories(out_dir, ec);
  if (ec) throw UsageError("--out: cannot create " + out_dir.string() + ": " + ec.message());
  return std::make_unique<util::DirectoryLock>(out_dir.empty() ? std::string(".") : out_dir.string(), command);
}

// --out, or where an analysis writes without it: `in_run_dir` inside --run-dir, else
// <checkpoint without extension>_<suffix>.json next to --checkpoint.
std::string output_path(const std::string& out, const std::string& run_dir, const std::string& checkpoint,
                        const std::string& in_run_dir, const std::string& suffix) {
  if (!out.empty()) return out;
  if (!run_dir.empty()) return run_dir + "/" + in_run_dir;
  return std::filesystem::path(checkpoint).replace_extension("").string() + "_" + suffix + ".json";
}

struct SweepCommand {
  ConfigFlags config;
  std::string run_dir;
  std::string checkpoint;
  std::string out;
  std::string plan_file;  // evaluate this plan instead of a grid
  sweep::SweepOptions options;
};

// `sweep-bits --plan FILE`: one saved bit plan instead of a grid.
int run_plan_sweep(const SweepCommand& command, const std::string& checkpoint) {
  if (command.options.parallel) throw UsageError("sweep-bits --plan runs as one process");
  const auto config = config_for_checkpoint(checkpoint, command.config);
  const auto out = output_path(command.out, command.run_dir, checkpoint,
                               std::filesystem::path(command.plan_file).stem().string() + "_plan.json", "plan");
  auto result = mixed_precision::run_plan(config, checkpoint, command.plan_file, command.options.split,
                                          command.options.calibration_draws);
  const auto lock = lock_output_folder(out, "qrobust sweep-bits");
  util::write_file_atomically(out, result.dump(2) + "\n");
  const auto& plan = result.at("plan");
  spdlog::info("plan {}: accuracy {:.2f}% (float {:.2f}%), {:.3f} average weight bits -> {}", command.plan_file,
               plan.at("accuracy").get<double>(), result.at("fp32").at("accuracy").get<double>(),
               plan.at("average_weight_bits").get<double>(), out);
  return 0;
}

int run_sweep(const SweepCommand& command) {
  const std::string checkpoint = checkpoint_of(command.run_dir, command.checkpoint, "sweep-bits");
  if (!command.plan_file.empty()) return run_plan_sweep(command, checkpoint);
  sweep::grid(command.options);  // bad bit lists fail before any work
  const auto config = config_for_checkpoint(checkpoint, command.config);
  const auto out = output_path(command.out, command.run_dir, checkpoint, "sweep.json", "sweep");
  const bool writes = command.options.parallel == nullptr || command.options.parallel->is_main();
  const auto lock = writes ? lock_output_folder(out, "qrobust sweep-bits") : nullptr;
  const auto result = sweep::run_sweep(config, checkpoint, command.options);
  if (command.options.parallel && !command.options.parallel->is_main()) return 0;
  report::write_sweep(result, out);
  spdlog::info("wrote {} (+ .md, .csv)", out);
  return 0;
}

struct SensitivityCommand {
  ConfigFlags config;
  std::string run_dir;
  std::string checkpoint;
  std::string out;
  sweep::SensitivityOptions options;
};

int run_sensitivity(const SensitivityCommand& command) {
  const std::string checkpoint = checkpoint_of(command.run_dir, command.checkpoint, "sensitivity");
  quant::check_bits(command.options.bits, "--bits");
  if (command.options.bits == quant::kFloatBits) throw UsageError("--bits: 32 is float; choose 2..16");
  const auto config = config_for_checkpoint(checkpoint, command.config);
  const auto out = output_path(command.out, command.run_dir, checkpoint,
                               "sensitivity_w" + std::to_string(command.options.bits) + "_" +
                                   data::split_name(command.options.split) + ".json",
                               "sensitivity");
  const auto lock = lock_output_folder(out, "qrobust sensitivity");
  const auto result = sweep::run_sensitivity(config, checkpoint, command.options);
  std::string warning;
  report::write_sensitivity(result, out, warning);
  if (!warning.empty()) spdlog::warn("{}", warning);
  spdlog::info("wrote {} (+ .md, .csv and a chart)", out);
  return 0;
}

struct MixedPrecisionCommand {
  ConfigFlags config;
  std::string run_dir;
  std::string checkpoint;
  std::string out;
  mixed_precision::SearchRequest request;
};

int run_mixed_precision(const MixedPrecisionCommand& command) {
  const std::string checkpoint = checkpoint_of(command.run_dir, command.checkpoint, "mixed-precision");
  const auto config = config_for_checkpoint(checkpoint, command.config);
  const auto out = output_path(command.out, command.run_dir, checkpoint, "mixed_precision.json", "mixed_precision");
  const auto lock = lock_output_folder(out, "qrobust mixed-precision");
  auto request = command.request;
  request.stop = &g_stop_requested;
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  const auto result = mixed_precision::run_mixed_precision(config, checkpoint, request);
  std::string warning;
  report::write_mixed_precision(result, out, warning);
  if (!warning.empty()) spdlog::warn("{}", warning);
  spdlog::info("wrote {} (+ .md, .csv, the plans and a Pareto chart)", out);
  return 0;
}

struct ExportCommand {
  ConfigFlags config;
  std::string run_dir;
  std::string checkpoint;
  deploy::ExportRequest request;
};

int run_export(const ExportCommand& command) {
  const std::string checkpoint = checkpoint_of(command.run_dir, command.checkpoint, "export");
  const auto config = config_for_checkpoint(checkpoint, command.config);
  deploy::check_request(config, command.request);  // before the lock, which creates the folder
  const auto lock = lock_output_folder(command.request.out, "qrobust export");
  const auto result = deploy::run_export(config, checkpoint, command.request);
  spdlog::info("wrote {} ({}, draw {}){}", command.request.out, result.at("format").get<std::string>(), command.request.draw,
               result.contains("reference")
                   ? fmt::format("; reference {}.* (qrobust accuracy {:.2f}%)", command.request.reference,
                                 result.at("reference").at("accuracy").get<double>())
                   : "");
  return 0;
}

struct RunCommand {
  std::string experiment_file;
  std::string results_root = "results";
  bool dry_run = false;
  int64_t threads = 0;  // 0: each config's own
  std::vector<int64_t> seeds;  // empty: all of the file's
};

struct ConfigCommand {
  bool defaults = false;
  std::string config_file;
  std::vector<std::string> overrides;
};

// Prints a config with every default filled in: the reference (--defaults), or a file's.
int run_config(const ConfigCommand& command) {
  if (command.defaults == !command.config_file.empty())
    throw UsageError("config: give exactly one of --defaults or --config FILE");
  if (command.defaults && !command.overrides.empty()) throw UsageError("config: --set applies to --config FILE");
  std::cout << (command.defaults ? config::annotated_defaults()
                                 : config::to_yaml(config::load_config(command.config_file, command.overrides)));
  return 0;
}

int run_experiment(const RunCommand& command) {
  auto experiment = experiment::load_experiment(command.experiment_file, command.results_root);
  experiment::select_seeds(experiment, command.seeds);
  if (command.threads > 0)
    for (auto& run : experiment.runs) run.config.threads = command.threads;
  util::configure_threads(experiment.runs.front().config.threads);
  std::cout << experiment::describe_plan(experiment) << std::flush;
  if (command.dry_run) return 0;
  cli::ConsoleObserver observer;
  experiment::RunOptions options;
  options.observer = &observer;
  options.stop = &g_stop_requested;
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  experiment::run_experiment(experiment, options);
  spdlog::info("wrote {}/{}/table.md (+ .json, .csv, plots)", command.results_root, experiment.name);
  return 0;
}

struct BenchCommand {
  bench::BenchOptions options;
  bool sweep = false;
  std::string data_root = config::default_data_root(config::Dataset::kCifar10);
  std::string decode_folder;  // bench --decode
  int64_t decode_images = 512;
  int64_t threads = 0;  // 0: all cores
};

int run_bench(const BenchCommand& command) {
  util::configure_threads(command.decode_folder.empty() ? command.threads : 1);  // decoding is timed on one core
  const auto result = !command.decode_folder.empty() ? bench::run_decode_benchmark(command.decode_folder, command.decode_images)
                      : command.sweep                ? bench::run_sweep_benchmark(command.options, command.data_root)
                                                     : bench::run_benchmark(command.options);
  std::cout << result.dump(2) << std::endl;
  return 0;
}

int run_import(const io::TorchvisionImport& request) {
  const auto imported = io::import_torchvision(request);
  spdlog::info("imported {} tensors ({}, width {}, {} classes) -> {}", imported.tensors, request.model, imported.width,
               imported.num_classes, request.out);
  return 0;
}

// Each subcommand with its flags, bound to the fields of its command struct.
CLI::App* add_train_command(CLI::App& app, TrainCommand& command) {
  auto* sub = app.add_subcommand("train", "train a model from a config into a run directory");
  add_config_flags(sub, command.config);
  sub->add_option("--out", command.out_dir, "run directory (default: runs/<name>)")->group("Run");
  sub->add_flag("--resume", command.resume, "continue the run in --out from its last checkpoint")->group("Run");
  return sub;
}

CLI::App* add_eval_command(CLI::App& app, EvalCommand& command) {
  auto* sub = app.add_subcommand("eval", "evaluate a trained model");
  sub->add_option("--run", command.run_dir, "run directory")->group("Model");
  sub->add_option("--checkpoint", command.checkpoint, "checkpoint file")->group("Model");
  sub->add_option("--split", command.split, "test, val or train")
      ->transform(one_of(data::kSplitNames))
      ->group("Data");
  add_config_flags(sub, command.config);
  return sub;
}

CLI::App* add_sweep_command(CLI::App& app, SweepCommand& command) {
  auto* sub = app.add_subcommand("sweep-bits", "accuracy of a trained model at every weight/activation bit-width");
  sub->add_option("--run", command.run_dir, "run directory")->group("Model");
  sub->add_option("--checkpoint", command.checkpoint, "checkpoint file")->group("Model");
  sub->add_option("--weight-bits", command.options.weight_bits, "weight bit-widths, e.g. 8,6,4 (32 = float)")
      ->delimiter(',')
      ->group("Grid");
  sub->add_option("--act-bits", command.options.act_bits, "activation bit-widths, e.g. 32,8,4 (32 = float)")
      ->delimiter(',')
      ->group("Grid");
  sub->add_flag("--pairs", command.options.pairs, "zip the two lists (8/8, 6/6, ...) instead of the full grid")
      ->group("Grid");
  sub->add_option("--split", command.options.split, "test, or val (held-out training images)")
      ->transform(one_of(data::kEvaluationSplitNames))
      ->group("Data");
  sub->add_option("--calibration-draws", command.options.calibration_draws,
                        "independent seeded calibration samples; rows report mean, std, min and max (default 1)")
      ->group("Grid");
  sub->add_option("--plan", command.plan_file,
                  "evaluate this bit plan file (from mixed-precision) instead of a grid; writes RUN/<plan>_plan.json")
      ->group("Grid");
  sub->add_option("--out", command.out, "output JSON (default: RUN/sweep.json); .md and .csv go beside it")
      ->group("Output");
  add_config_flags(sub, command.config);
  return sub;
}

CLI::App* add_mixed_precision_command(CLI::App& app, MixedPrecisionCommand& command) {
  auto* sub = app.add_subcommand(
      "mixed-precision", "per-layer bit-widths under size or bit-operation budgets, by each criterion, against uniform");
  sub->add_option("--run", command.run_dir, "run directory")->group("Model");
  sub->add_option("--checkpoint", command.checkpoint, "checkpoint file")->group("Model");
  sub->add_option("--draws", command.request.calibration_draws,
                  "calibration draws each plan is evaluated with (default 1)")
      ->check(CLI::PositiveNumber)
      ->group("Evaluation");
  sub->add_option("--out", command.out,
                  "output JSON (default: RUN/mixed_precision.json); .md, .csv, the plans and a chart go beside it")
      ->group("Output");
  add_config_flags(sub, command.config);
  return sub;
}

CLI::App* add_export_command(CLI::App& app, ExportCommand& command) {
  auto* sub = app.add_subcommand(
      "export", "write a quantized model as ONNX (QuantizeLinear/DequantizeLinear) or as a PyTorch file");
  sub->add_option("--run", command.run_dir, "run directory")->group("Model");
  sub->add_option("--checkpoint", command.checkpoint, "checkpoint file")->group("Model");
  auto& r = command.request;
  sub->add_option("--weight-bits", r.weight_bits, "weight bit-width, 2..8 or 32 (default 8)")->group("Quantization");
  sub->add_option("--act-bits", r.act_bits, "activation bit-width, 2..8 or 32 (default 8)")->group("Quantization");
  sub->add_option("--plan", r.plan_path, "a bit plan file (from mixed-precision) instead of uniform bits")
      ->group("Quantization");
  sub->add_option("--draw", r.draw, "calibration draw whose ranges and learned weights are used (default 0)")
      ->group("Quantization");
  sub->add_option("--format", r.format, "onnx (default) or torch")
      ->transform(one_of(deploy::kExportFormatNames))
      ->type_name("FORMAT")
      ->group("Output");
  sub->add_option("--bias", r.bias,
                  "ONNX biases of quantized layers: int32 at input x weight scale, as integer kernels need (default), "
                  "or float, as qrobust computes (the runtime then cannot fuse them)")
      ->transform(one_of(deploy::kBiasEncodingNames))
      ->group("Output");
  sub->add_option("--out", r.out, "the file to write, e.g. model.onnx")->required()->group("Output");
  sub->add_option("--reference", r.reference,
                  "also write REFERENCE.{json,images,labels,logits}: the split's images and qrobust's logits")
      ->group("Output");
  sub->add_option("--reference-split", r.reference_split, "test (default) or val")
      ->transform(one_of(data::kEvaluationSplitNames))
      ->group("Output");
  add_config_flags(sub, command.config);
  return sub;
}

CLI::App* add_sensitivity_command(CLI::App& app, SensitivityCommand& command) {
  auto* sub = app.add_subcommand(
      "sensitivity", "per-layer sensitivity: accuracy with only one element quantized, and with all but one");
  sub->add_option("--run", command.run_dir, "run directory")->group("Model");
  sub->add_option("--checkpoint", command.checkpoint, "checkpoint file")->group("Model");
  sub->add_option("--bits", command.options.bits, "bit-width of weights and activations (default 4)")
      ->group("Quantization");
  sub->add_option("--split", command.options.split, "test, or val (held-out training images)")
      ->transform(one_of(data::kEvaluationSplitNames))
      ->group("Data");
  sub->add_option("--out", command.out,
                              "output JSON (default: RUN/sensitivity_wBITS_SPLIT.json); .md, .csv and a chart go beside it")
      ->group("Output");
  add_config_flags(sub, command.config);
  return sub;
}

CLI::App* add_run_command(CLI::App& app, RunCommand& command) {
  auto* sub = app.add_subcommand("run", "train, sweep and tabulate every variant of an experiment file");
  sub->add_option("--config", command.experiment_file, "experiment file (experiments/NAME.yaml)")
      ->required()
      ->group("Experiment");
  sub->add_option("--results", command.results_root, "results root; output goes to RESULTS/NAME (default: results)")
      ->group("Output");
  sub->add_flag("--dry-run", command.dry_run, "print the plan and its estimated time, run nothing")->group("Experiment");
  sub->add_option("--seeds", command.seeds,
                  "train and sweep only these of the file's seeds (one sitting each); the tables take the "
                  "others where they are complete")
      ->group("Experiment");
  sub->add_option("--threads", command.threads, "CPU threads (default: each config's `threads`)")
      ->check(CLI::PositiveNumber)
      ->group("Execution");
  return sub;
}

CLI::App* add_bench_command(CLI::App& app, BenchCommand& command) {
  bench::BenchOptions& bench_options = command.options;
  // Non-zero defaults so that `bench --regularizer grad_l1` times both gradient-norm terms.
  bench_options.regularizer.lambda_w(0.05).lambda_a(0.05).lambda(0.01);
  auto* sub = app.add_subcommand("bench", "measure training and inference throughput on synthetic data");
  sub->add_option("--model", bench_options.model, "model name")->group("Model");
  sub->add_option("--batch", bench_options.batch, "batch size")->group("Workload");
  sub->add_option("--steps", bench_options.steps, "timed steps")->group("Workload");
  sub->add_option("--threads", command.threads, "CPU threads (default: all cores)")->group("Execution");
  sub->add_option("--device", bench_options.device, "auto, cpu, cuda or cuda:N")->group("Execution");
  sub->add_flag("--sweep", command.sweep, "time the 6x6 sweep-bits grid against 36 float evaluations")
      ->group("Sweep");
  sub->add_option("--data", command.data_root, "CIFAR-10 cifar-10-batches-bin directory for --sweep")
      ->group("Sweep");
  sub->add_option("--decode", command.decode_folder,
                        "time JPEG decoding + augmentation (1 thread) on the ImageFolder DIR/train, making it if absent")
      ->group("Decoding");
  sub->add_option("--images", command.decode_images, "JPEGs to make for --decode (default 512)")
      ->check(CLI::PositiveNumber)
      ->group("Decoding");
  auto& bench_penalty = bench_options.regularizer;
  sub->add_option("--regularizer", bench_penalty.penalty(), "also time a penalized step")
      ->transform(one_of(regularize::kPenaltyNames))
      ->group("Penalty");
  sub->add_option("--alternate", bench_options.alternate_rounds,
                        "also time ROUNDS alternating rounds of plain and penalized steps; report the median ratio")
      ->group("Penalty");
  sub->add_option("--method", bench_penalty.method(), "how a gradient-norm penalty is differentiated")
      ->transform(one_of(regularize::kGradientMethodNames))
      ->group("Penalty");
  sub->add_option("--lambda-w", bench_penalty.lambda_w(), "weight-gradient term (default 0.05)")->group("Penalty");
  sub->add_option("--lambda-a", bench_penalty.lambda_a(), "activation-gradient term (default 0.05)")->group("Penalty");
  sub->add_option("--lambda", bench_penalty.lambda(), "dq_lipschitz / kurtosis weight (default 0.01)")->group("Penalty");
  sub->add_option("--amortized", bench_options.amortized,
                        "also time these amortized penalties in the alternating rounds, each "
                        "key=value[,key=value] over every, subbatch, method (e.g. every=4 subbatch=32)")
      ->group("Penalty");
  sub->add_flag("--compare-layer-ops", bench_options.compare_layer_ops,
                      "also time the penalized step with LibTorch's own convolution double backward")
      ->group("Penalty");
  sub->add_flag("--compare-channels-last", bench_options.compare_channels_last,
                "also time the plain and the penalized step channels-last in the alternating rounds")
      ->group("Penalty");
  return sub;
}

CLI::App* add_config_command(CLI::App& app, ConfigCommand& command) {
  auto* sub = app.add_subcommand("config", "print a config with every default filled in, or the reference of every key");
  sub->add_flag("--defaults", command.defaults, "every key with its default and a one-line meaning")->group("Config");
  sub->add_option("--config", command.config_file, "validate this config and print it resolved")->group("Config");
  sub->add_option("--set", command.overrides, "override a config value, e.g. --set train.lr=0.05 (repeatable)")
      ->group("Config")
      ->take_all();
  return sub;
}

CLI::App* add_import_command(CLI::App& app, io::TorchvisionImport& command) {
  command.model = "resnet18";
  auto* sub = app.add_subcommand(
      "import-torchvision", "turn a torchvision ResNet state dict (torch.save .pth) into a qrobust checkpoint");
  sub->add_option("state_dict", command.state_dict, "the .pth file, e.g. resnet18-f37072fd.pth")
      ->required()
      ->group("Input");
  sub->add_option("--model", command.model, "resnet18, resnet34 or resnet50 (default resnet18)")->group("Input");
  sub->add_option("--out", command.out, "checkpoint to write")->required()->group("Output");
  sub->add_option("--image-size", command.image_size, "input size the checkpoint is for (default 224)")
      ->group("Output");
  return sub;
}

}  // namespace

int main(int argc, char** argv) {
  util::configure_allocator();
  // Named, so that help reads the same however the binary was invoked (docs/reference/cli.md).
  CLI::App app{"qrobust: train networks that stay accurate under post-training quantization, and measure it", "qrobust"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "print version, git SHA and LibTorch version");

  TrainCommand train_command;
  auto* train_app = add_train_command(app, train_command);
  EvalCommand eval_command;
  auto* eval_app = add_eval_command(app, eval_command);
  SweepCommand sweep_command;
  auto* sweep_app = add_sweep_command(app, sweep_command);
  SensitivityCommand sensitivity_command;
  auto* sensitivity_app = add_sensitivity_command(app, sensitivity_command);
  MixedPrecisionCommand mixed_precision_command;
  auto* mixed_precision_app = add_mixed_precision_command(app, mixed_precision_command);
  ExportCommand export_command;
  auto* export_app = add_export_command(app, export_command);
  RunCommand run_command;
  auto* run_app = add_run_command(app, run_command);
  BenchCommand bench_command;
  auto* bench_app = add_bench_command(app, bench_command);
  ConfigCommand config_command;
  auto* config_app = add_config_command(app, config_command);
  io::TorchvisionImport import_request;
  auto* import_app = add_import_command(app, import_request);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << " (see --help)" << std::endl;
    return 2;
  }
  if (show_version) {
    std::cout << util::version_line() << std::endl;
    return 0;
  }
  try {
    util::warn_if_reference_blas();
    // torchrun-style launches: RANK, WORLD_SIZE, ... in the environment (parallel/data_parallel.h).
    std::unique_ptr<parallel::DataParallel> parallel;
    if (const auto env = parallel::distributed_env()) {
      if (!train_app->parsed() && !sweep_app->parsed())
        throw UsageError("WORLD_SIZE is " + std::to_string(env->world_size) + ": only train and sweep-bits run as several processes");
      parallel = std::make_unique<parallel::DataParallel>(*env);
      train_command.parallel = parallel.get();
      sweep_command.options.parallel = parallel.get();
      sweep_command.options.progress = parallel->is_main();
    }
    if (train_app->parsed()) return run_train(train_command);
    if (eval_app->parsed()) return run_eval(eval_command);
    if (bench_app->parsed()) return run_bench(bench_command);
    if (sweep_app->parsed()) return run_sweep(sweep_command);
    if (sensitivity_app->parsed()) return run_sensitivity(sensitivity_command);
    if (mixed_precision_app->parsed()) return run_mixed_precision(mixed_precision_command);
    if (export_app->parsed()) return run_export(export_command);
    if (run_app->parsed()) return run_experiment(run_command);
    if (import_app->parsed()) return run_import(import_request);
    if (config_app->parsed()) return run_config(config_command);
    std::cout << app.help() << std::endl;
    return 2;
  } catch (const UsageError& e) {
    spdlog::error("{}", e.what());
    return 2;
  } catch (const c10::Error& e) {
    spdlog::error("{}", first_line(e.what()));
    return 1;
  } catch (const std::bad_alloc&) {
    spdlog::error("out of memory: the model, batch size or a data set needs more than this machine has");
    return 1;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
