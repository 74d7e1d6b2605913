#include "experiment/experiment.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>

#include "data/datasets.h"
#include "report/table.h"
#include "util/atomic_file.h"
#include "util/progress.h"
#include "util/runtime.h"

namespace qrobust::experiment {
namespace fs = std::filesystem;
using config::ConfigError;

namespace {

// Names become directory and file names.
void check_name(config::YamlSection& section, const std::string& key, const std::string& name, const char* what) {
  static const std::regex pattern("[A-Za-z0-9_.@+-]+");
  if (!std::regex_match(name, pattern) || name == "." || name == "..")
    section.fail(key, std::string(what) + " \"" + name + "\" must be letters, digits and _ . @ + - only");
}

std::vector<std::string> joined(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

config::ExperimentConfig load_run_config(const std::string& file, const std::string& base,
                                         const std::vector<std::string>& overrides, const std::string& run) {
  try {
    return config::load_config(base, overrides);
  } catch (const ConfigError& e) {
    throw ConfigError(file + ": " + run + ": " + e.what());
  }
}

std::string sweep_path(const PlannedRun& run, const Overrides& quantizer, const std::string& split) {
  return run.dir + "/sweep_" + quantizer.name + "_" + split + ".json";
}

// An existing sweep file answers the current request: same configurations, split and quantizer.
bool sweep_matches(const nlohmann::json& sweep, const config::ExperimentConfig& config, const sweep::SweepOptions& options) {
  const auto& header = sweep.at("header");
  const auto& q = config.quant;
  if (header.value("split", "") != options.split || header.value("weight_granularity", "") != q.weight_granularity ||
      header.value("weight_symmetric", !q.weight_symmetric) != q.weight_symmetric ||
      header.value("act_symmetric", !q.act_symmetric) != q.act_symmetric ||
      header.value("weight_estimator", "") != q.weight_estimator || header.value("act_estimator", "") != q.act_estimator ||
      header.value("first_last", "") != q.first_last || header.value("bn_fold", !q.bn_fold) != q.bn_fold ||
      header.value("percentile", -1.0) != q.percentile)
    return false;
  const auto configurations = sweep::grid(options);
  const auto& rows = sweep.at("rows");
  if (rows.size() != configurations.size() + 1) return false;
  for (size_t k = 0; k < configurations.size(); ++k)
    if (rows[k + 1].value("weight_bits", 0) != configurations[k].first ||
        rows[k + 1].value("act_bits", 0) != configurations[k].second)
      return false;
  return true;
}

std::optional<nlohmann::json> existing_sweep(const std::string& path, const config::ExperimentConfig& config,
                                             const sweep::SweepOptions& options) {
  if (!fs::exists(path)) return std::nullopt;
  const auto sweep = nlohmann::json::parse(util::read_file(path), nullptr, /*allow_exceptions=*/false);
  if (sweep.is_discarded() || !sweep.contains("rows") || !sweep.contains("header") || !sweep_matches(sweep, config, options))
    return std::nullopt;
  return sweep;
}

}  // namespace

Experiment load_experiment(const std::string& path, const std::string& results_root) {
  if (!fs::is_regular_file(path)) throw ConfigError(path + ": experiment file not found");
  auto origin = std::make_shared<config::YamlOrigin>();
  origin->file = path;
  config::YamlSection s(config::parse_yaml(util::read_file(path), path), "", origin);
  Experiment e;
  e.file = path;
  e.name = s.text("name", fs::path(path).stem().string());
  check_name(s, "name", e.name, "experiment name");
  const std::string base = s.text("base", "");
  if (base.empty()) s.fail("base", "is required: the config file the variants override");
  const auto base_overrides = s.assignments("set");
  const bool shared_baseline = s.boolean("baseline", false);
  if (s.has("finetune") && !shared_baseline) s.fail("finetune", "applies to fine-tuning from a baseline: set baseline: true");
  const auto finetune = s.assignments("finetune");
  const auto variant_names = s.keys("variants");
  if (variant_names.empty()) s.fail("variants", "is required: at least one variant (e.g. none: {})");
  auto variants = s.section("variants");

  auto sweep_section = s.section("sweep");
  const auto weight_bits = sweep_section.integers("weight_bits", {8, 6, 4});
  const auto act_bits = sweep_section.integers("act_bits", {8, 6, 4});
  e.sweep.weight_bits.assign(weight_bits.begin(), weight_bits.end());
  e.sweep.act_bits.assign(act_bits.begin(), act_bits.end());
  e.sweep.pairs = sweep_section.boolean("pairs", true);
  e.splits = sweep_section.strings("splits", {"test"});
  if (e.splits.empty()) sweep_section.fail("splits", "needs at least one of val, test");
  for (const auto& split : e.splits)
    if (split != "val" && split != "test") sweep_section.fail("splits", "expected val or test, got \"" + split + "\"");
  auto quantizers = sweep_section.section("quantizers");
  for (const auto& name : sweep_section.keys("quantizers")) {
    check_name(quantizers, name, name, "quantizer name");
    auto assignments = quantizers.assignments(name);
    for (const auto& a : assignments)
      if (a.rfind("quant.", 0) != 0) quantizers.fail(name, "may only set quant.* keys, got " + a.substr(0, a.find('=')));
    e.quantizers.push_back({name, assignments});
  }
  if (e.quantizers.empty()) e.quantizers.push_back({"default", {}});
  try {
    sweep::grid(e.sweep);
  } catch (const UsageError& error) {
    sweep_section.fail("weight_bits", error.what());
  }
  sweep_section.finish();
  s.finish();

  const std::string dir = results_root + "/" + e.name;
  std::vector<std::string> variant_base = base_overrides;
  if (shared_baseline) {
    e.runs.push_back({"baseline", load_run_config(path, base, base_overrides, "baseline"), dir + "/baseline"});
    variant_base = joined(joined(base_overrides, finetune), {"train.init_from=" + dir + "/baseline/checkpoint.pt"});
  }
  for (const auto& name : variant_names) {
    check_name(variants, name, name, "variant name");
    if (name == "baseline" && shared_baseline) variants.fail(name, "\"baseline\" is the shared baseline's name");
    const auto overrides = joined(joined(variant_base, variants.assignments(name)), {"name=" + e.name + "." + name});
    e.runs.push_back({name, load_run_config(path, base, overrides, "variant \"" + name + "\""), dir + "/" + name});
  }
  // Every sweep config is valid before anything runs.
  for (const auto& run : e.runs)
    for (const auto& quantizer : e.quantizers) {
      const auto config = [&] {
        try {
          return sweep_config(run, quantizer);
        } catch (const ConfigError& error) {
          throw ConfigError(path + ": quantizer \"" + quantizer.name + "\": " + error.what());
        }
      }();
      if (std::count(e.splits.begin(), e.splits.end(), "val") && config.data.val_size == 0)
        throw ConfigError(path + ": sweep.splits has val but " + run.name + " holds out no validation images (data.val_size)");
    }
  return e;
}

config::ExperimentConfig sweep_config(const PlannedRun& run, const Overrides& quantizer) {
  return config::parse_config(config::to_yaml(run.config), run.dir + "/config.yaml", quantizer.assignments);
}

namespace {

// Seconds per image of evaluation (forward, no gradient) for `config`'s model.
double measure_eval_seconds(const config::ExperimentConfig& config, torch::Device device) {
  const auto info = data::dataset_info(config.data);
  auto model = train::build_model(config, device);
  model->eval();
  torch::NoGradGuard no_grad;
  const auto images = torch::randn({config.data.eval_batch_size, info.channels, info.height, info.width},
                                   torch::TensorOptions().device(device));
  model->forward(images);
  const auto start = std::chrono::steady_clock::now();
  model->forward(images);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
         static_cast<double>(config.data.eval_batch_size);
}

}  // namespace

std::string describe_plan(const Experiment& e) {
  std::ostringstream out;
  out << "experiment " << e.name << " (" << e.file << "): " << e.runs.size() << " runs, " << e.quantizers.size()
      << " quantizer settings x " << e.splits.size() << " splits x " << sweep::grid(e.sweep).size() + 1
      << " configurations each\n";
  double total = 0;
  // Measurements and split sizes are shared by runs that agree on what they depend on.
  std::map<std::string, double> step_seconds, eval_seconds_of;
  std::map<std::string, data::DataSplits> splits_of;
  for (const auto& run : e.runs) {
    const auto& c = run.config;
    const auto state = train::inspect_run(run.dir, c);
    util::configure_threads(c.threads);
    const torch::Device device = util::resolve_device(c.device);
    const std::string data_key = c.data.dataset + "/" + c.data.root + "/" + std::to_string(c.data.val_size) + "/" +
                                 std::to_string(c.data.train_limit) + "/" + std::to_string(c.seed);
    if (!splits_of.count(data_key)) splits_of[data_key] = data::load_splits(c.data, c.seed);
    const auto& splits = splits_of[data_key];
    const std::string model_key = c.model.name + "/" + std::to_string(c.model.width) + "/" + c.data.dataset;
    const std::string eval_key = model_key + "/" + std::to_string(c.data.eval_batch_size);
    if (!eval_seconds_of.count(eval_key)) eval_seconds_of[eval_key] = measure_eval_seconds(c, device);
    const double eval_seconds = eval_seconds_of[eval_key];
    double seconds = 0;
    out << "  " << run.name << ": ";
    if (state.complete) {
      out << "trained";
    } else {
      // A step's cost depends on these, not on lambda, lr or epochs.
      const std::string key = model_key + "/" + std::to_string(c.data.batch_size) + "/" + c.regularizer.name + "/" +
                              c.regularizer.method + "/" + std::to_string(c.quant_aware.enabled());
      if (!step_seconds.count(key)) step_seconds[key] = train::measure_step_seconds(c, device, 2);
      const int64_t steps = splits.train.size() / c.data.batch_size;
      const int64_t epochs = c.train.epochs - state.logged_epochs;
      seconds += static_cast<double>(epochs) *
                 (static_cast<double>(steps) * step_seconds[key] +
                  static_cast<double>(splits.test.size() + splits.val.size()) * eval_seconds);
      out << (state.started ? "resume after epoch " + std::to_string(state.logged_epochs) + ", " : std::string("train "))
          << epochs << " of " << c.train.epochs << " epochs";
      if (!c.train.init_from.empty()) out << " from " << c.train.init_from;
    }
    int pending = 0;
    for (const auto& quantizer : e.quantizers)
      for (const auto& split : e.splits) {
        auto options = e.sweep;
        options.split = split;
        if (state.complete && existing_sweep(sweep_path(run, quantizer, split), sweep_config(run, quantizer), options))
          continue;
        ++pending;
        // Each configuration is one evaluation; the float pass, the gradients and calibration about four more.
        const auto images = split == "val" ? splits.val.size() : splits.test.size();
        seconds += static_cast<double>(sweep::grid(e.sweep).size() + 4) * static_cast<double>(images) * eval_seconds;
      }
    out << "; " << pending << " sweeps to run; about " << util::format_duration(seconds) << "\n";
    total += seconds;
  }
  out << "estimated total: " << util::format_duration(total)
      << " (from 2 timed training steps of each kind and one timed evaluation batch per model, here)\n";
  return out.str();
}

nlohmann::json run_experiment(const Experiment& e, const RunOptions& options) {
  std::vector<report::SweepEntry> entries;
  for (const auto& run : e.runs) {
    bool trained_now = false;  // then sweep files already there describe other weights
    const auto state = train::inspect_run(run.dir, run.config);
    if (state.complete) {
      spdlog::info("{}: already trained ({})", run.name, run.dir);
    } else {
      trained_now = true;
      spdlog::info("{}: {} into {}", run.name, state.started ? "resuming" : "training", run.dir);
      try {
        train::train(run.config, {run.dir, state.started, options.observer, options.stop});
      } catch (const train::TrainingInterrupted&) {
        throw train::TrainingInterrupted("interrupted while training " + run.name + "; run `qrobust run --config " +
                                         e.file + "` again to resume");
      }
    }
    for (const auto& quantizer : e.quantizers)
      for (const auto& split : e.splits) {
        if (options.stop && options.stop->load())
          throw train::TrainingInterrupted("interrupted before sweeping " + run.name + "; run `qrobust run --config " +
                                           e.file + "` again to continue");
        auto sweep_options = e.sweep;
        sweep_options.split = split;
        const auto config = sweep_config(run, quantizer);
        const auto path = sweep_path(run, quantizer, split);
        auto sweep = trained_now ? std::nullopt : existing_sweep(path, config, sweep_options);
        if (!sweep) {
          spdlog::info("{}: sweeping with quantizer {} on the {} split", run.name, quantizer.name, split);
          sweep = sweep::run_sweep(config, train::checkpoint_path(run.dir), sweep_options);
          sweep::write_sweep(*sweep, path);
        }
        entries.push_back({run.name, quantizer.name, split, *sweep});
      }
  }
  const std::string dir = fs::path(e.runs.front().dir).parent_path().string();
  auto table = report::make_table(e.name, entries);
  report::write_table(table, dir);
  std::string warning;
  for (const auto& file : report::write_plots(table, dir, warning)) spdlog::info("wrote {}", file);
  if (!warning.empty()) spdlog::warn("{}", warning);
  return table;
}

}  // namespace qrobust::experiment
