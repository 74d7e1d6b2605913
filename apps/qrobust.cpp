// qrobust command-line interface: parses flags into option structs and calls the library.
// Exit codes: 0 success, 1 runtime failure, 2 usage or config error.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <new>

#include "bench/bench.h"
#include "config/config.h"
#include "data/datasets.h"
#include "experiment/experiment.h"
#include "quant/quantizer.h"
#include "report/sensitivity.h"
#include "report/sweep_files.h"
#include "sweep/sensitivity.h"
#include "sweep/sweep.h"
#include "train/checkpoint.h"
#include "train/console_observer.h"
#include "train/distributed.h"
#include "train/evaluate.h"
#include "train/torchvision_import.h"
#include "train/trainer.h"
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
  train::DataParallel* parallel = nullptr;  // launched as one of several processes
};

struct EvalCommand {
  ConfigFlags config;
  std::string run_dir;
  std::string checkpoint;
  std::string split = "test";
};

void add_config_flags(CLI::App* command, ConfigFlags& flags) {
  command->add_option("--config", flags.config_file, "experiment config (YAML)")->group("Config");
  command->add_option("--set", flags.overrides, "override a config value, e.g. --set train.lr=0.05 (repeatable)")
      ->group("Config")
      ->take_all();
  command->add_option("--threads", flags.threads, "CPU threads (default: the config's `threads`, auto = all cores)")
      ->group("Execution")
      ->check(CLI::PositiveNumber);
}

config::ExperimentConfig load_with_flags(const std::string& file, const ConfigFlags& flags) {
  auto config = config::load_config(file, flags.overrides);
  if (flags.threads > 0) config.threads = flags.threads;
  return config;
}

// The config a trained model is used with: --config if given, else the one embedded in the
// checkpoint; --set and --threads apply either way.
config::ExperimentConfig config_for_checkpoint(const std::string& checkpoint, const ConfigFlags& flags) {
  if (!flags.config_file.empty()) return load_with_flags(flags.config_file, flags);
  auto config = config::parse_config(train::read_checkpoint_info(checkpoint).config_yaml,
                                     checkpoint + " (embedded config)", flags.overrides);
  if (flags.threads > 0) config.threads = flags.threads;
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
  train::ConsoleObserver observer;
  if (main_process) options.observer = &observer;
  options.stop = &g_stop_requested;
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  if (command.parallel)
    spdlog::info("rank {} of {}", command.parallel->rank(), command.parallel->world_size());
  if (main_process)
    spdlog::info("training {} ({} on {}, penalty {}) into {}", config.name, config.model.name,
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
  util::configure_threads(config.threads);
  auto model = train::build_model(config, device);
  const auto info = train::load_checkpoint(checkpoint, *model, nullptr);
  const auto splits = data::load_splits(config.data, config.seed);
  const auto& split = command.split == "val" ? splits.val : command.split == "train" ? splits.train : splits.test;
  if (split.size() == 0) throw UsageError("eval: the " + command.split + " split is empty (set data.val_size)");
  const auto result = train::evaluate(*model, split, splits.info, config.data.eval_batch_size, device);
  const nlohmann::json out = {{"checkpoint", checkpoint}, {"model", config.model.name},  {"dataset", util::name_of(config.data.dataset, config::kDatasetNames)},
                              {"epoch", info.epoch},      {"split", command.split},      {"loss", result.loss},
                              {"accuracy", result.accuracy}, {"samples", result.samples}};
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

struct SweepCommand {
  ConfigFlags config;
  std::string run_dir;
  std::string checkpoint;
  std::string out;
  sweep::SweepOptions options;
};

int run_sweep(const SweepCommand& command) {
  const std::string checkpoint = checkpoint_of(command.run_dir, command.checkpoint, "sweep-bits");
  sweep::grid(command.options);  // bad bit lists fail before any work
  const auto config = config_for_checkpoint(checkpoint, command.config);
  std::string out = command.out;
  if (out.empty())
    out = command.run_dir.empty() ? std::filesystem::path(checkpoint).replace_extension("").string() + "_sweep.json"
                                  : command.run_dir + "/sweep.json";
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
  std::string out = command.out;
  if (out.empty())
    out = command.run_dir.empty()
              ? std::filesystem::path(checkpoint).replace_extension("").string() + "_sensitivity.json"
              : command.run_dir + "/sensitivity_w" + std::to_string(command.options.bits) + "_" + command.options.split + ".json";
  const auto lock = lock_output_folder(out, "qrobust sensitivity");
  const auto result = sweep::run_sensitivity(config, checkpoint, command.options);
  std::string warning;
  report::write_sensitivity(result, out, warning);
  if (!warning.empty()) spdlog::warn("{}", warning);
  spdlog::info("wrote {} (+ .md, .csv and a chart)", out);
  return 0;
}

struct RunCommand {
  std::string experiment_file;
  std::string results_root = "results";
  bool dry_run = false;
  int64_t threads = 0;  // 0: each config's own
};

int run_experiment(const RunCommand& command) {
  auto experiment = experiment::load_experiment(command.experiment_file, command.results_root);
  if (command.threads > 0)
    for (auto& run : experiment.runs) run.config.threads = command.threads;
  std::cout << experiment::describe_plan(experiment) << std::flush;
  if (command.dry_run) return 0;
  train::ConsoleObserver observer;
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
};

int run_bench(const BenchCommand& command) {
  const auto result = !command.decode_folder.empty() ? bench::run_decode_benchmark(command.decode_folder, command.decode_images)
                      : command.sweep                ? bench::run_sweep_benchmark(command.options, command.data_root)
                                                     : bench::run_benchmark(command.options);
  std::cout << result.dump(2) << std::endl;
  return 0;
}

int run_import(const train::TorchvisionImport& request) {
  const auto imported = train::import_torchvision(request);
  spdlog::info("imported {} tensors ({}, width {}, {} classes) -> {}", imported.tensors, request.model, imported.width,
               imported.num_classes, request.out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  util::configure_allocator();
  CLI::App app{"qrobust: train networks that stay accurate under post-training quantization, and measure it"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "print version, git SHA and LibTorch version");

  TrainCommand train_command;
  auto* train_app = app.add_subcommand("train", "train a model from a config into a run directory");
  add_config_flags(train_app, train_command.config);
  train_app->add_option("--out", train_command.out_dir, "run directory (default: runs/<name>)")->group("Run");
  train_app->add_flag("--resume", train_command.resume, "continue the run in --out from its last checkpoint")->group("Run");

  EvalCommand eval_command;
  auto* eval_app = app.add_subcommand("eval", "evaluate a trained model");
  eval_app->add_option("--run", eval_command.run_dir, "run directory")->group("Model");
  eval_app->add_option("--checkpoint", eval_command.checkpoint, "checkpoint file")->group("Model");
  eval_app->add_option("--split", eval_command.split, "test, val or train")
      ->check(CLI::IsMember({"test", "val", "train"}))
      ->group("Data");
  add_config_flags(eval_app, eval_command.config);

  SweepCommand sweep_command;
  auto* sweep_app = app.add_subcommand("sweep-bits", "accuracy of a trained model at every weight/activation bit-width");
  sweep_app->add_option("--run", sweep_command.run_dir, "run directory")->group("Model");
  sweep_app->add_option("--checkpoint", sweep_command.checkpoint, "checkpoint file")->group("Model");
  sweep_app->add_option("--weight-bits", sweep_command.options.weight_bits, "weight bit-widths, e.g. 8,6,4 (32 = float)")
      ->delimiter(',')
      ->group("Grid");
  sweep_app->add_option("--act-bits", sweep_command.options.act_bits, "activation bit-widths, e.g. 32,8,4 (32 = float)")
      ->delimiter(',')
      ->group("Grid");
  sweep_app->add_flag("--pairs", sweep_command.options.pairs, "zip the two lists (8/8, 6/6, ...) instead of the full grid")
      ->group("Grid");
  sweep_app->add_option("--split", sweep_command.options.split, "test, or val (held-out training images)")
      ->check(CLI::IsMember({"test", "val"}))
      ->group("Data");
  sweep_app->add_option("--calibration-draws", sweep_command.options.calibration_draws,
                        "independent seeded calibration samples; rows report mean, std, min and max (default 1)")
      ->group("Grid");
  sweep_app->add_option("--out", sweep_command.out, "output JSON (default: RUN/sweep.json); .md and .csv go beside it")
      ->group("Output");
  add_config_flags(sweep_app, sweep_command.config);

  SensitivityCommand sensitivity_command;
  auto* sensitivity_app = app.add_subcommand(
      "sensitivity", "per-layer sensitivity: accuracy with only one element quantized, and with all but one");
  sensitivity_app->add_option("--run", sensitivity_command.run_dir, "run directory")->group("Model");
  sensitivity_app->add_option("--checkpoint", sensitivity_command.checkpoint, "checkpoint file")->group("Model");
  sensitivity_app->add_option("--bits", sensitivity_command.options.bits, "bit-width of weights and activations (default 4)")
      ->group("Quantization");
  sensitivity_app->add_option("--split", sensitivity_command.options.split, "test, or val (held-out training images)")
      ->check(CLI::IsMember({"test", "val"}))
      ->group("Data");
  sensitivity_app->add_option("--out", sensitivity_command.out,
                              "output JSON (default: RUN/sensitivity_wBITS_SPLIT.json); .md, .csv and a chart go beside it")
      ->group("Output");
  add_config_flags(sensitivity_app, sensitivity_command.config);

  RunCommand run_command;
  auto* run_app = app.add_subcommand("run", "train, sweep and tabulate every variant of an experiment file");
  run_app->add_option("--config", run_command.experiment_file, "experiment file (experiments/NAME.yaml)")
      ->required()
      ->group("Experiment");
  run_app->add_option("--results", run_command.results_root, "results root; output goes to RESULTS/NAME (default: results)")
      ->group("Output");
  run_app->add_flag("--dry-run", run_command.dry_run, "print the plan and its estimated time, run nothing")->group("Experiment");
  run_app->add_option("--threads", run_command.threads, "CPU threads (default: each config's `threads`)")
      ->check(CLI::PositiveNumber)
      ->group("Execution");

  BenchCommand bench_command;
  bench::BenchOptions& bench_options = bench_command.options;
  // Non-zero defaults so that `bench --regularizer grad_l1` times both gradient-norm terms.
  bench_options.regularizer.lambda_w(0.05).lambda_a(0.05).lambda(0.01);
  auto* bench_app = app.add_subcommand("bench", "measure training and inference throughput on synthetic data");
  bench_app->add_option("--model", bench_options.model, "model name")->group("Model");
  bench_app->add_option("--batch", bench_options.batch, "batch size")->group("Workload");
  bench_app->add_option("--steps", bench_options.steps, "timed steps")->group("Workload");
  bench_app->add_option("--threads", bench_options.threads, "CPU threads (default: all cores)")->group("Execution");
  bench_app->add_option("--device", bench_options.device, "auto, cpu, cuda or cuda:N")->group("Execution");
  bench_app->add_flag("--sweep", bench_command.sweep, "time the 6x6 sweep-bits grid against 36 float evaluations")
      ->group("Sweep");
  bench_app->add_option("--data", bench_command.data_root, "CIFAR-10 cifar-10-batches-bin directory for --sweep")
      ->group("Sweep");
  bench_app->add_option("--decode", bench_command.decode_folder,
                        "time JPEG decoding + augmentation (1 thread) on the ImageFolder DIR/train, making it if absent")
      ->group("Decoding");
  bench_app->add_option("--images", bench_command.decode_images, "JPEGs to make for --decode (default 512)")
      ->check(CLI::PositiveNumber)
      ->group("Decoding");
  auto& bench_penalty = bench_options.regularizer;
  bench_app->add_option("--regularizer", bench_penalty.penalty(), "also time a penalized step")
      ->transform(CLI::CheckedTransformer(util::name_map(regularize::kPenaltyNames)))
      ->group("Penalty");
  bench_app->add_option("--alternate", bench_options.alternate_rounds,
                        "also time ROUNDS alternating rounds of plain and penalized steps; report the median ratio")
      ->group("Penalty");
  bench_app->add_option("--method", bench_penalty.method(), "how a gradient-norm penalty is differentiated")
      ->transform(CLI::CheckedTransformer(util::name_map(regularize::kGradientMethodNames)))
      ->group("Penalty");
  bench_app->add_option("--lambda-w", bench_penalty.lambda_w(), "weight-gradient term (default 0.05)")->group("Penalty");
  bench_app->add_option("--lambda-a", bench_penalty.lambda_a(), "activation-gradient term (default 0.05)")->group("Penalty");
  bench_app->add_option("--lambda", bench_penalty.lambda(), "dq_lipschitz / kurtosis weight (default 0.01)")->group("Penalty");
  bench_app->add_option("--amortized", bench_options.amortized,
                        "also time these amortized penalties in the alternating rounds, each "
                        "key=value[,key=value] over every, subbatch, method (e.g. every=4 subbatch=32)")
      ->group("Penalty");
  bench_app->add_flag("--compare-layer-ops", bench_options.compare_layer_ops,
                      "also time the penalized step with LibTorch's own convolution double backward")
      ->group("Penalty");

  train::TorchvisionImport import_request;
  import_request.model = "resnet18";
  auto* import_app = app.add_subcommand(
      "import-torchvision", "turn a torchvision ResNet state dict (torch.save .pth) into a qrobust checkpoint");
  import_app->add_option("state_dict", import_request.state_dict, "the .pth file, e.g. resnet18-f37072fd.pth")
      ->required()
      ->group("Input");
  import_app->add_option("--model", import_request.model, "resnet18, resnet34 or resnet50 (default resnet18)")->group("Input");
  import_app->add_option("--out", import_request.out, "checkpoint to write")->required()->group("Output");
  import_app->add_option("--image-size", import_request.image_size, "input size the checkpoint is for (default 224)")
      ->group("Output");

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
    // torchrun-style launches: RANK, WORLD_SIZE, ... in the environment (train/distributed.h).
    std::unique_ptr<train::DataParallel> parallel;
    if (const auto env = train::distributed_env()) {
      if (!train_app->parsed() && !sweep_app->parsed())
        throw UsageError("WORLD_SIZE is " + std::to_string(env->world_size) + ": only train and sweep-bits run as several processes");
      parallel = std::make_unique<train::DataParallel>(*env);
      train_command.parallel = parallel.get();
      sweep_command.options.parallel = parallel.get();
      sweep_command.options.progress = parallel->is_main();
    }
    if (train_app->parsed()) return run_train(train_command);
    if (eval_app->parsed()) return run_eval(eval_command);
    if (bench_app->parsed()) return run_bench(bench_command);
    if (sweep_app->parsed()) return run_sweep(sweep_command);
    if (sensitivity_app->parsed()) return run_sensitivity(sensitivity_command);
    if (run_app->parsed()) return run_experiment(run_command);
    if (import_app->parsed()) return run_import(import_request);
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
