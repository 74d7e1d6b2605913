#include "experiment/experiment.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include "data/datasets.h"
#include "io/checkpoint.h"
#include "models/registry.h"
#include "report/gradient_norms.h"
#include "report/sensitivity.h"
#include "report/sweep_files.h"
#include "report/table.h"
#include "sweep/sensitivity.h"
#include "train/schedule.h"
#include "util/atomic_file.h"
#include "util/directory_lock.h"
#include "util/progress.h"
#include "util/provenance.h"
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

// An existing sweep file answers the current request: same configurations, split, draws and
// quantizer settings (every one of them, as configured).
bool sweep_matches(const nlohmann::json& sweep, const config::ExperimentConfig& config, const sweep::SweepOptions& options) {
  const auto& header = sweep.at("header");
  if (header.value("split", "") != data::split_name(options.split) ||
      header.value("calibration_draws", int64_t{0}) != options.calibration_draws || !header.contains("quant") ||
      header.at("quant") != config.quant.to_json())
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
  const auto sweep = nlohmann::json::parse(util::read_file(path, util::kMaxResultFileBytes), nullptr, /*allow_exceptions=*/false);
  if (sweep.is_discarded() || !sweep.contains("rows") || !sweep.contains("header") || !sweep_matches(sweep, config, options))
    return std::nullopt;
  return sweep;
}

}  // namespace

bool SensitivityPlan::covers(const PlannedRun& run, const Overrides& quantizer) const {
  auto listed = [](const std::vector<std::string>& names, const std::string& name) {
    return names.empty() || std::find(names.begin(), names.end(), name) != names.end();
  };
  return enabled && run.swept && listed(variants, run.name) && listed(quantizers, quantizer.name);
}

Experiment load_experiment(const std::string& path, const std::string& results_root) {
  if (!fs::is_regular_file(path)) throw ConfigError(path + ": experiment file not found");
  auto origin = std::make_shared<config::YamlOrigin>();
  origin->file = path;
  config::YamlSection s(config::parse_yaml(util::read_file(path, util::kMaxTextFileBytes), path), "", origin);
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
  const int64_t branch_epoch = s.integer("branch_epoch", 0);
  if (s.has("branch_epoch")) {
    if (!shared_baseline) s.fail("branch_epoch", "branches variants off a shared baseline: set baseline: true");
    if (s.has("finetune")) s.fail("branch_epoch", "continues the baseline's schedule; it cannot be combined with finetune");
    if (branch_epoch < 1) s.fail("branch_epoch", "must be at least 1, got " + std::to_string(branch_epoch));
  }
  const auto variant_names = s.keys("variants");
  if (variant_names.empty()) s.fail("variants", "is required: at least one variant (e.g. none: {})");
  auto variants = s.section("variants");
  e.seeds = s.integers("seeds", {});
  if (s.has("seeds") && e.seeds.empty()) s.fail("seeds", "needs at least one seed");
  for (size_t i = 0; i < e.seeds.size(); ++i) {
    if (e.seeds[i] < 0) s.fail("seeds", "must be >= 0, got " + std::to_string(e.seeds[i]));
    if (std::count(e.seeds.begin(), e.seeds.begin() + static_cast<std::ptrdiff_t>(i), e.seeds[i]))
      s.fail("seeds", "lists seed " + std::to_string(e.seeds[i]) + " twice");
  }
  const bool reference_given = s.has("reference");
  e.reference = s.text("reference", "none");
  if (reference_given && std::find(variant_names.begin(), variant_names.end(), e.reference) == variant_names.end())
    s.fail("reference", "\"" + e.reference + "\" is not one of the variants");
  e.also_compare_with = s.strings("also_compare_with", {});
  for (const auto& name : e.also_compare_with)
    if (std::find(variant_names.begin(), variant_names.end(), name) == variant_names.end())
      s.fail("also_compare_with", "\"" + name + "\" is not one of the variants");

  auto sweep_section = s.section("sweep");
  const auto weight_bits = sweep_section.integers("weight_bits", {8, 6, 4});
  const auto act_bits = sweep_section.integers("act_bits", {8, 6, 4});
  e.sweep.weight_bits.assign(weight_bits.begin(), weight_bits.end());
  e.sweep.act_bits.assign(act_bits.begin(), act_bits.end());
  e.sweep.pairs = sweep_section.boolean("pairs", true);
  e.sweep.calibration_draws = sweep_section.integer("calibration_draws", 1);
  if (e.sweep.calibration_draws < 1 || e.sweep.calibration_draws > 1000)
    sweep_section.fail("calibration_draws", "must be 1..1000, got " + std::to_string(e.sweep.calibration_draws));
  const auto split_names = sweep_section.strings("splits", {"test"});
  if (split_names.empty()) sweep_section.fail("splits", "needs at least one of val, test");
  for (const auto& name : split_names) {
    const auto split = util::value_of(name, data::kEvaluationSplitNames);
    if (!split) sweep_section.fail("splits", "expected val or test, got \"" + name + "\"");
    e.splits.push_back(*split);
  }
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

  if (s.has("sensitivity")) {
    auto section = s.section("sensitivity");
    e.sensitivity.enabled = true;
    e.sensitivity.bits = static_cast<int>(section.integer("bits", 4));
    if (e.sensitivity.bits < 2 || e.sensitivity.bits > 16)
      section.fail("bits", "must be 2..16, got " + std::to_string(e.sensitivity.bits));
    e.sensitivity.split = section.choice("split", data::Split::kTest, data::kEvaluationSplitNames);
    e.sensitivity.variants = section.strings("variants", {});
    for (const auto& name : e.sensitivity.variants)
      if (std::find(variant_names.begin(), variant_names.end(), name) == variant_names.end() &&
          !(name == "baseline" && shared_baseline))
        section.fail("variants", "\"" + name + "\" is not one of the variants");
      else if (name == "baseline" && branch_epoch > 0)
        section.fail("variants", "the baseline is a trunk the variants branch from (branch_epoch); it is not swept");
    e.sensitivity.quantizers = section.strings("quantizers", {});
    for (const auto& name : e.sensitivity.quantizers)
      if (std::none_of(e.quantizers.begin(), e.quantizers.end(), [&](const Overrides& q) { return q.name == name; }))
        section.fail("quantizers", "\"" + name + "\" is not one of sweep.quantizers");
    section.finish();
  }
  s.finish();

  e.dir = results_root + "/" + e.name;
  if (e.seeds.empty()) e.seeds.push_back(load_run_config(path, base, base_overrides, "base").seed);
  for (const int64_t seed : e.seeds) {
    const std::string dir = e.dir + "/seed_" + std::to_string(seed);
    const auto seeded = joined(base_overrides, {"seed=" + std::to_string(seed)});
    std::vector<std::string> variant_base = seeded;
    const std::string baseline_checkpoint = dir + "/baseline/checkpoint.pt";
    if (shared_baseline && branch_epoch > 0) {
      // One schedule: the baseline stops at the branch epoch, every variant continues it.
      auto baseline = load_run_config(path, base, joined(seeded, {"train.stop_after=" + std::to_string(branch_epoch)}),
                                      "baseline");
      if (branch_epoch >= baseline.train.epochs)
        s.fail("branch_epoch", "must be below train.epochs (" + std::to_string(baseline.train.epochs) + "), got " +
                                   std::to_string(branch_epoch));
      e.runs.push_back({"baseline", seed, baseline, dir + "/baseline", 0, /*swept=*/false});
      variant_base = joined(seeded, {"train.branch_from=" + baseline_checkpoint});
    } else if (shared_baseline) {
      e.runs.push_back({"baseline", seed, load_run_config(path, base, seeded, "baseline"), dir + "/baseline"});
      variant_base = joined(joined(seeded, finetune), {"train.init_from=" + baseline_checkpoint});
    }
    for (const auto& name : variant_names) {
      check_name(variants, name, name, "variant name");
      if (name == "baseline" && shared_baseline) variants.fail(name, "\"baseline\" is the shared baseline's name");
      const auto overrides = joined(joined(variant_base, variants.assignments(name)), {"name=" + e.name + "." + name});
      e.runs.push_back({name, seed, load_run_config(path, base, overrides, "variant \"" + name + "\""), dir + "/" + name,
                        branch_epoch});
    }
  }
  // The process runs the whole experiment on one thread count (apps/ sets it once).
  for (const auto& run : e.runs)
    if (run.config.threads != e.runs.front().config.threads)
      throw ConfigError(path + ": " + run.name + " sets threads to " + std::to_string(run.config.threads) + ", " +
                        e.runs.front().name + " to " + std::to_string(e.runs.front().config.threads) +
                        "; an experiment runs on one thread count (set it in the base config or with --threads)");
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
      const bool needs_val = std::count(e.splits.begin(), e.splits.end(), data::Split::kVal) ||
                             (e.sensitivity.covers(run, quantizer) && e.sensitivity.split == data::Split::kVal);
      if (needs_val && config.data.val_size == 0)
        throw ConfigError(path + ": the val split is swept but " + run.name + " holds out no validation images (data.val_size)");
    }
  return e;
}

config::ExperimentConfig sweep_config(const PlannedRun& run, const Overrides& quantizer) {
  return config::parse_config(config::to_yaml(run.config), run.dir + "/config.yaml", quantizer.assignments);
}

namespace {

// An existing sensitivity file answers the current request: same bits, split and quantizer settings.
std::optional<nlohmann::json> existing_sensitivity(const std::string& path, const config::ExperimentConfig& config,
                                                   const SensitivityPlan& plan) {
  if (!fs::exists(path)) return std::nullopt;
  const auto doc = nlohmann::json::parse(util::read_file(path, util::kMaxResultFileBytes), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.contains("rows") || !doc.contains("header")) return std::nullopt;
  const auto& header = doc.at("header");
  if (header.value("bits", 0) != plan.bits || header.value("split", "") != data::split_name(plan.split) ||
      !header.contains("quant") || header.at("quant") != config.quant.to_json())
    return std::nullopt;
  return doc;
}

// One result file the experiment asks of a run: the sweep with one quantizer setting on one
// split, or the sensitivity analysis with one quantizer setting. Whatever counts, finds,
// copies, removes or runs a run's results walks analyses_of.
struct Analysis {
  const Overrides* quantizer;
  std::optional<data::Split> sweep_split;  // none: the sensitivity analysis
  config::ExperimentConfig config;         // the run's config with the quantizer's overrides
  bool is_sweep() const { return sweep_split.has_value(); }
};

std::vector<Analysis> analyses_of(const Experiment& e, const PlannedRun& run) {
  std::vector<Analysis> analyses;
  if (!run.swept) return analyses;
  for (const auto& quantizer : e.quantizers) {
    const auto config = sweep_config(run, quantizer);
    for (const auto split : e.splits) analyses.push_back({&quantizer, split, config});
    if (e.sensitivity.covers(run, quantizer)) analyses.push_back({&quantizer, std::nullopt, config});
  }
  return analyses;
}

// Where `analysis` of the run in `run_dir` is written.
std::string result_path(const Experiment& e, const Analysis& analysis, const std::string& run_dir) {
  const auto split = analysis.sweep_split.value_or(e.sensitivity.split);
  return run_dir + (analysis.is_sweep() ? "/sweep_" : "/sensitivity_") + analysis.quantizer->name + "_" +
         data::split_name(split) + ".json";
}

sweep::SweepOptions sweep_options(const Experiment& e, const Analysis& analysis) {
  auto options = e.sweep;
  options.split = *analysis.sweep_split;
  return options;
}

// The result of `analysis` in `run_dir`, where it is there and answers the current request.
std::optional<nlohmann::json> existing_result(const Experiment& e, const Analysis& analysis, const std::string& run_dir) {
  const auto path = result_path(e, analysis, run_dir);
  return analysis.is_sweep() ? existing_sweep(path, analysis.config, sweep_options(e, analysis))
                             : existing_sensitivity(path, analysis.config, e.sensitivity);
}

void write_result(const Experiment& e, const Analysis& analysis, const nlohmann::json& result, const std::string& run_dir) {
  const auto path = result_path(e, analysis, run_dir);
  if (analysis.is_sweep()) return report::write_sweep(result, path);
  std::string warning;
  report::write_sensitivity(result, path, warning);
  if (!warning.empty()) spdlog::warn("{}", warning);
}

// What one evaluation costs for a model, and how many elements a sensitivity analysis visits.
struct EvalCost {
  double seconds_per_image = 0;
  size_t elements = 0;  // quantizable layers + quantization points
};

EvalCost measure_eval_cost(const config::ExperimentConfig& config, torch::Device device) {
  const auto info = data::dataset_info(config.data);
  auto model = models::build_model(config.model, info.input(), config.seed, device);
  model->eval();
  torch::NoGradGuard no_grad;
  const auto images = torch::randn({config.data.eval_batch_size, info.channels, info.height, info.width},
                                   torch::TensorOptions().device(device));
  model->forward(images);
  const auto start = std::chrono::steady_clock::now();
  model->forward(images);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {seconds / static_cast<double>(config.data.eval_batch_size),
          model->quant_layers().size() + model->quant_points().size()};
}

std::string resume_hint(const Experiment& e) { return "; run `qrobust run --config " + e.file + "` again to continue"; }

}  // namespace

namespace {

// Every sweep and sensitivity file the experiment asks of `run` is there and matches.
bool results_complete(const Experiment& e, const PlannedRun& run) {
  for (const auto& analysis : analyses_of(e, run))
    if (!existing_result(e, analysis, run.dir)) return false;
  return true;
}

// A run's metrics.json, or an empty object where it is missing or unreadable.
nlohmann::json read_metrics(const std::string& run_dir) {
  const auto path = train::metrics_path(run_dir);
  if (!fs::exists(path)) return nlohmann::json::object();
  auto metrics = nlohmann::json::parse(util::read_file(path, util::kMaxResultFileBytes), nullptr, /*allow_exceptions=*/false);
  return metrics.is_object() ? metrics : nlohmann::json::object();
}

// A string field of a metrics object ("" where absent or not a string).
std::string text_field(const nlohmann::json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string finished_at(const nlohmann::json& metrics) {
  const auto it = metrics.find("provenance");
  return it != metrics.end() && it->is_object() ? text_field(*it, "time_utc") : std::string();
}

// The seed's shared baseline run, or null when the experiment has none.
const PlannedRun* baseline_of(const Experiment& e, const PlannedRun& run) {
  for (const auto& other : e.runs)
    if (other.seed == run.seed && other.name == "baseline" && &other != &run) return &other;
  return nullptr;
}

// Whether a finished variant grew from a trunk other than its seed's baseline as it is now.
// The same training on another machine gives other bits (oneDNN picks kernels and blocking by
// CPU), so a baseline trained again after its checkpoint was lost is usually another trunk, and
// what grew from the old one no longer pairs with what grows from the new one. A variant names
// its trunk's SHA-1 (trunk_sha1, train/trainer.h); results from before that field count as
// grown from the baseline when they were finished after it.
bool grew_from_other_trunk(const Experiment& e, const PlannedRun& run) {
  const PlannedRun* baseline = baseline_of(e, run);
  if (baseline == nullptr || run.name == "baseline" || !fs::exists(train::metrics_path(run.dir))) return false;
  const auto variant = read_metrics(run.dir), trunk = read_metrics(baseline->dir);
  const std::string grown_from = text_field(variant, "trunk_sha1");
  if (grown_from.empty()) return finished_at(variant).empty() || finished_at(variant) < finished_at(trunk);
  std::string trunk_sha1 = text_field(trunk, "checkpoint_sha1");
  if (trunk_sha1.empty() && fs::exists(train::checkpoint_path(baseline->dir)))
    trunk_sha1 = util::file_sha1(train::checkpoint_path(baseline->dir));
  return grown_from != trunk_sha1;
}

// Every sweep and sensitivity file of `run` the experiment asks for, in all its formats.
void remove_results(const Experiment& e, const PlannedRun& run) {
  for (const auto& analysis : analyses_of(e, run)) report::remove_result_files(result_path(e, analysis, run.dir));
}

// This machine's numerics fingerprints (train/trainer.h), each computed once per plan or run: one
// costs a training step, and the runs of an experiment share a few.
class NumericsFingerprints {
 public:
  const std::string& of(const config::ExperimentConfig& config) {
    auto& fingerprint = known_[key_of(config)];
    if (fingerprint.empty()) fingerprint = train::numerics_fingerprint(config, util::resolve_device(config.device));
    return fingerprint;
  }

 private:
  // The config without what the fingerprint's plain step at seed 0 does not read.
  static std::string key_of(config::ExperimentConfig config) {
    config.name.clear();
    config.seed = 0;
    config.train.branch_from.clear();
    config.train.init_from.clear();
    config.train.stop_after = 0;
    config.regularizer = {};
    config.quant = {};
    config.quant_aware = {};
    return config::to_yaml(config);
  }

  std::map<std::string, std::string> known_;
};

// Results from before checkpoint_sha1, trunk_sha1 and numerics_fingerprint get them while the
// checkpoints they name are here, so that a trunk trained again bit for bit keeps what grew from
// it. Checkpoints are not committed, so one that is here was trained on this machine.
void record_checkpoint_identity(const Experiment& e, const PlannedRun& run, NumericsFingerprints& fingerprints) {
  auto metrics = read_metrics(run.dir);
  if (metrics.empty() || !train::inspect_run(run.dir, run.config).complete || grew_from_other_trunk(e, run)) return;
  bool changed = false;
  const std::string checkpoint_sha1 = util::file_sha1(train::checkpoint_path(run.dir));
  if (!metrics.contains("checkpoint_sha1")) {
    metrics["checkpoint_sha1"] = checkpoint_sha1;
    changed = true;
  }
  if (!metrics.contains("numerics_fingerprint") && text_field(metrics, "checkpoint_sha1") == checkpoint_sha1) {
    metrics["numerics_fingerprint"] = fingerprints.of(run.config);
    changed = true;
  }
  const PlannedRun* baseline = baseline_of(e, run);
  if (baseline != nullptr && run.name != "baseline" && !metrics.contains("trunk_sha1") &&
      fs::exists(train::checkpoint_path(baseline->dir))) {
    metrics["trunk_sha1"] = util::file_sha1(train::checkpoint_path(baseline->dir));
    changed = true;
  }
  if (changed) util::write_file_atomically(train::metrics_path(run.dir), metrics.dump(2) + "\n");
}


// What makes two runs the same computation: the config but for its name, the trunk's path (its
// bits are compared apart), and where it runs (the numerics fingerprint compares that).
std::string computation_of(config::ExperimentConfig config) {
  config.name.clear();
  config.train.branch_from.clear();
  config.threads = 0;
  config.device.clear();
  return config::to_yaml(config);
}

// Another experiment's complete run of this seed, under the same results root, that is `run`
// trained already: the same computation, grown from a trunk whose SHA-1 is `trunk_sha1` ("" for
// none), trained with this machine's numerics, and its checkpoint here (checkpoints are not
// committed: it was trained on this machine). Experiments on one base config share their seeds'
// trunks and, e.g., `none`, so a sitting that runs two of them for one seed trains those once.
std::optional<std::string> find_twin(const Experiment& e, const PlannedRun& run, const std::string& trunk_sha1,
                                     NumericsFingerprints& fingerprints) {
  const std::string computation = computation_of(run.config);
  std::error_code ec;
  for (const auto& other : fs::directory_iterator(fs::path(e.dir).parent_path(), ec)) {
    const auto seed_dir = other.path() / ("seed_" + std::to_string(run.seed));
    if (fs::equivalent(other.path(), e.dir, ec) || !fs::is_directory(seed_dir, ec)) continue;
    for (const auto& candidate : fs::directory_iterator(seed_dir, ec)) {
      const std::string dir = candidate.path().string();
      if (!fs::exists(train::checkpoint_path(dir)) || !fs::exists(train::config_path(dir))) continue;
      const auto metrics = read_metrics(dir);
      if (text_field(metrics, "trunk_sha1") != trunk_sha1 || text_field(metrics, "numerics_fingerprint").empty()) continue;
      try {
        const auto config_file = train::config_path(dir);
        if (computation_of(config::parse_config(util::read_file(config_file, util::kMaxTextFileBytes), config_file)) !=
            computation)
          continue;
      } catch (const std::exception&) {
        continue;  // not a run of this version's configs
      }
      if (text_field(metrics, "checkpoint_sha1") != util::file_sha1(train::checkpoint_path(dir))) continue;
      if (text_field(metrics, "numerics_fingerprint") == fingerprints.of(run.config)) return dir;
    }
  }
  return std::nullopt;
}

// The SHA-1 of the file `run` starts from as it is now ("" for none, "?" while it is not there).
std::string current_trunk_sha1(const PlannedRun& run) {
  const auto trunk = train::starting_checkpoint(run.config);
  if (trunk.empty()) return "";
  return fs::exists(trunk) ? util::file_sha1(trunk) : "?";
}

// Makes `run` the copy of its twin: the same weights, momentum and log, its own config and name,
// and the twin's sweeps and sensitivity analyses where they answer this experiment's request.
// The checkpoint is written as the run's own training writes it, so its bytes are the same.
void adopt_twin(const Experiment& e, const PlannedRun& run, const std::string& twin) {
  const auto& c = run.config;
  auto model = models::build_model(c.model, data::dataset_info(c.data).input(), c.seed, util::resolve_device(c.device));
  auto optimizer = train::make_optimizer(c.train, model->parameters());
  const int64_t epoch = io::load_checkpoint(train::checkpoint_path(twin), *model, &optimizer).epoch;
  std::error_code ec;
  fs::create_directories(run.dir, ec);
  if (ec) throw RuntimeFailure(run.dir + ": cannot create run directory: " + ec.message());
  const std::string yaml = config::to_yaml(c);
  util::write_file_atomically(train::config_path(run.dir), yaml);
  util::write_file_atomically(train::log_path(run.dir), util::read_file(train::log_path(twin), util::kMaxResultFileBytes));
  io::save_checkpoint(train::checkpoint_path(run.dir), *model, &optimizer, epoch, yaml);
  auto metrics = read_metrics(twin);
  metrics["name"] = c.name;
  metrics["checkpoint"] = train::checkpoint_path(run.dir);
  metrics["checkpoint_sha1"] = util::file_sha1(train::checkpoint_path(run.dir));
  metrics["copied_from"] = twin;
  for (const auto& analysis : analyses_of(e, run)) {
    if (auto result = existing_result(e, analysis, twin)) {
      (*result)["header"]["checkpoint"] = train::checkpoint_path(run.dir);
      write_result(e, analysis, *result, run.dir);
    }
  }
  util::write_file_atomically(train::metrics_path(run.dir), metrics.dump(2) + "\n");  // last: the run is complete
}

}  // namespace

std::vector<bool> runs_to_train(const Experiment& e) {
  std::vector<bool> train(e.runs.size());
  for (size_t i = 0; i < e.runs.size(); ++i) {
    const auto& run = e.runs[i];
    const auto state = train::inspect_run(run.dir, run.config);
    train[i] = grew_from_other_trunk(e, run) ||
               (!state.complete && !(fs::exists(train::metrics_path(run.dir)) && results_complete(e, run)));
  }
  // A variant that trains needs its seed's baseline checkpoint.
  for (size_t i = 0; i < e.runs.size(); ++i) {
    if (e.runs[i].name != "baseline" || fs::exists(train::checkpoint_path(e.runs[i].dir))) continue;
    for (size_t j = i + 1; j < e.runs.size() && e.runs[j].seed == e.runs[i].seed; ++j)
      if (train[j]) train[i] = true;
  }
  return train;
}

void select_seeds(Experiment& e, const std::vector<int64_t>& seeds) {
  std::set<int64_t> seen;
  for (const auto seed : seeds) {
    if (std::find(e.seeds.begin(), e.seeds.end(), seed) == e.seeds.end()) {
      std::string listed;
      for (const auto known : e.seeds) listed += (listed.empty() ? "" : ", ") + std::to_string(known);
      throw UsageError("--seeds: " + e.file + " has no seed " + std::to_string(seed) + " (its seeds: " + listed + ")");
    }
    if (!seen.insert(seed).second) throw UsageError("--seeds: lists seed " + std::to_string(seed) + " twice");
  }
  e.selected_seeds = seeds;
}

namespace {

// Whether a baseline trained again rebuilds its old trunk bit for bit, predicted by comparing this
// machine's numerics fingerprint with the one the trunk was trained with (train/trainer.h). The
// SHA-1 check after training (grew_from_other_trunk) decides; this only informs the plan.
enum class TrunkRebuild { kUnknown, kSameBits, kOtherBits };

TrunkRebuild predict_rebuild(const PlannedRun& baseline, NumericsFingerprints& fingerprints) {
  const std::string recorded = text_field(read_metrics(baseline.dir), "numerics_fingerprint");
  if (recorded.empty()) return TrunkRebuild::kUnknown;
  return fingerprints.of(baseline.config) == recorded ? TrunkRebuild::kSameBits : TrunkRebuild::kOtherBits;
}

std::string rebuild_note(TrunkRebuild rebuild) {
  switch (rebuild) {
    case TrunkRebuild::kSameBits:
      return " (this machine's numerics fingerprint is the old trunk's: it should come out bit for bit the same, "
             "and what grew from it is kept)";
    case TrunkRebuild::kOtherBits:
      return " (this machine's numerics fingerprint is not the old trunk's: it will have other bits, and what grew "
             "from it trains again)";
    case TrunkRebuild::kUnknown:
      break;
  }
  return " (the variants that grew from the old trunk train again unless it comes out bit for bit the same)";
}

bool is_selected(const Experiment& e, int64_t seed) {
  return e.selected_seeds.empty() ||
         std::find(e.selected_seeds.begin(), e.selected_seeds.end(), seed) != e.selected_seeds.end();
}

// The seeds not selected that still have something to train or sweep: the tables leave them out.
std::set<int64_t> left_out_seeds(const Experiment& e, const std::vector<bool>& to_train) {
  std::set<int64_t> left_out;
  for (size_t r = 0; r < e.runs.size(); ++r)
    if (!is_selected(e, e.runs[r].seed) && !left_out.count(e.runs[r].seed) &&
        (to_train[r] || !results_complete(e, e.runs[r])))
      left_out.insert(e.runs[r].seed);
  return left_out;
}

}  // namespace

std::string describe_plan(const Experiment& e) {
  std::ostringstream out;
  out << "experiment " << e.name << " (" << e.file << "): " << e.seeds.size() << " seeds x "
      << e.runs.size() / e.seeds.size() << " runs, " << e.quantizers.size() << " quantizer settings x " << e.splits.size()
      << " splits x " << sweep::grid(e.sweep).size() + 1 << " configurations x " << e.sweep.calibration_draws
      << " calibration draws each";
  if (e.sensitivity.enabled)
    out << "; sensitivity at " << e.sensitivity.bits << " bits on the " << data::split_name(e.sensitivity.split) << " split";
  out << "\n";
  // Measurements and split sizes are shared by runs that agree on what they depend on.
  std::map<std::string, double> step_seconds;
  std::map<std::string, EvalCost> eval_cost_of;
  std::map<std::string, data::DataSplits> splits_of;
  const auto to_train = runs_to_train(e);
  const auto left_out = left_out_seeds(e, to_train);
  // A baseline trained again comes out with the old trunk's bits only where the arithmetic is the
  // same; else the variants kept from the old trunk train again too (grew_from_other_trunk).
  std::map<int64_t, TrunkRebuild> trunk_trains_again;
  NumericsFingerprints fingerprints;
  for (size_t r = 0; r < e.runs.size(); ++r)
    if (to_train[r] && e.runs[r].name == "baseline" && fs::exists(train::metrics_path(e.runs[r].dir)))
      trunk_trains_again[e.runs[r].seed] = predict_rebuild(e.runs[r], fingerprints);
  std::map<int64_t, std::string> copied_trunk_sha1;  // per seed, where its baseline is copied
  double total = 0, worst_total = 0;
  for (size_t r = 0; r < e.runs.size(); ++r) {
    const auto& run = e.runs[r];
    if (!is_selected(e, run.seed)) {
      out << "  seed " << run.seed << " " << run.name << ": not selected (--seeds); "
          << (left_out.count(run.seed) ? "its seed is not complete: left out of the tables"
                                       : "its seed is complete: in the tables")
          << "\n";
      continue;
    }
    const auto& c = run.config;
    const auto state = train::inspect_run(run.dir, c);
    const torch::Device device = util::resolve_device(c.device);
    const std::string dataset = util::name_of(c.data.dataset, config::kDatasetNames);
    const std::string data_key = dataset + "/" + c.data.root + "/" + std::to_string(c.data.val_size) + "/" +
                                 std::to_string(c.data.train_limit) + "/" + std::to_string(c.seed);
    if (!splits_of.count(data_key)) splits_of[data_key] = data::load_splits(c.data, c.seed);
    const auto& splits = splits_of[data_key];
    const std::string model_key = c.model.name() + "/" + std::to_string(c.model.width()) + "/" + dataset;
    const std::string eval_key = model_key + "/" + std::to_string(c.data.eval_batch_size);
    if (!eval_cost_of.count(eval_key)) eval_cost_of[eval_key] = measure_eval_cost(c, device);
    const auto cost = eval_cost_of[eval_key];
    auto images_of = [&](data::Split split) { return static_cast<double>(splits[split].size()); };
    auto training_seconds = [&](int64_t epochs) {
      // A step's cost depends on these, not on lambda, lr or epochs.
      const std::string key = model_key + "/" + std::to_string(c.data.batch_size) + "/" + c.regularizer.name() + "/" +
                              std::to_string(static_cast<int>(c.regularizer.method())) + "/" +
                              std::to_string(c.regularizer.every()) + "/" + std::to_string(c.regularizer.subbatch()) + "/" +
                              std::to_string(c.quant_aware.enabled());
      if (!step_seconds.count(key)) step_seconds[key] = train::measure_step_seconds(c, device, 2);
      const int64_t steps = splits.train.size() / c.data.batch_size;
      return static_cast<double>(epochs) *
             (static_cast<double>(steps) * step_seconds[key] +
              static_cast<double>(splits.test.size() + splits.val.size()) * cost.seconds_per_image);
    };
    // The sweeps and sensitivity analyses to run: all of them after training, else the missing ones.
    struct Analyses {
      int sweeps = 0, sensitivities = 0;
      double seconds = 0;
    };
    // `done`: the run directory whose files answer the request already (null: none does).
    auto analyses = [&](const std::string* done) {
      Analyses pending;
      for (const auto& analysis : analyses_of(e, run)) {
        if (done && existing_result(e, analysis, *done)) continue;
        if (analysis.is_sweep()) {
          ++pending.sweeps;
          // Each configuration is one evaluation per draw; the float pass, the gradients and each draw's calibration about four more.
          const double evaluations = static_cast<double>(sweep::grid(e.sweep).size() * e.sweep.calibration_draws + 4);
          pending.seconds += evaluations * images_of(*analysis.sweep_split) * cost.seconds_per_image;
        } else {
          ++pending.sensitivities;
          pending.seconds +=
              static_cast<double>(2 * cost.elements + 5) * images_of(e.sensitivity.split) * cost.seconds_per_image;
        }
      }
      return pending;
    };
    // A run that trains from scratch may be copied from another experiment instead (find_twin);
    // a variant's trunk is then the copied baseline's, whose bits are its twin's.
    const bool other_trunk = to_train[r] && grew_from_other_trunk(e, run);
    std::optional<std::string> twin;
    if (to_train[r] && (other_trunk || !fs::exists(train::checkpoint_path(run.dir)))) {
      std::string trunk_sha1 = current_trunk_sha1(run);
      if (trunk_sha1 == "?" && copied_trunk_sha1.count(run.seed)) trunk_sha1 = copied_trunk_sha1[run.seed];
      twin = find_twin(e, run, trunk_sha1, fingerprints);
      if (twin && run.name == "baseline") copied_trunk_sha1[run.seed] = util::file_sha1(train::checkpoint_path(*twin));
    }
    double seconds = 0, worst_extra = 0;
    out << "  seed " << run.seed << " " << run.name << ": ";
    if (!to_train[r]) {
      const auto rebuild = trunk_trains_again.find(run.seed);
      const bool at_risk = run.name != "baseline" && rebuild != trunk_trains_again.end() &&
                           rebuild->second != TrunkRebuild::kSameBits && fs::exists(train::metrics_path(run.dir));
      const double again = at_risk ? training_seconds(c.train.last_epoch() - run.first_epoch) + analyses(nullptr).seconds : 0;
      out << (state.complete ? "trained" : "trained (results kept, checkpoint not here)");
      if (at_risk && rebuild->second == TrunkRebuild::kOtherBits) {
        seconds += again;
        out << " (" << util::format_duration(again) << " more: the trunk trained again here will have other bits)";
      } else if (at_risk) {
        worst_extra = again;
        out << " (" << util::format_duration(again) << " more if the trunk trained again has other bits)";
      }
    } else if (twin) {
      out << "copy " << *twin << " (the same run, trained on this machine)";
    } else {
      const bool again = other_trunk || (!state.complete && fs::exists(train::metrics_path(run.dir)));  // from scratch
      const int64_t epochs = c.train.last_epoch() - run.first_epoch - (again ? 0 : state.logged_epochs);
      seconds += training_seconds(epochs);
      out << (other_trunk ? "train again (it grew from another trunk than the seed's baseline now), "
              : again     ? "train again (its checkpoint is needed), "
                    : state.started ? "resume after " + std::to_string(state.logged_epochs) + " epochs, " : std::string("train "))
          << epochs << (epochs == 1 ? " epoch" : " epochs");
      if (again && run.name == "baseline") out << rebuild_note(trunk_trains_again.at(run.seed));
      if (c.train.stop_after > 0) out << " (1.." << c.train.stop_after << " of a " << c.train.epochs << "-epoch schedule)";
      if (!c.train.branch_from.empty())
        out << " (" << run.first_epoch + 1 << ".." << c.train.last_epoch() << ") continuing " << c.train.branch_from;
      if (!c.train.init_from.empty()) out << " from " << c.train.init_from;
    }
    const auto pending = analyses(twin ? &*twin : to_train[r] ? nullptr : &run.dir);
    seconds += pending.seconds;
    out << "; " << pending.sweeps << " sweeps";
    if (e.sensitivity.enabled) out << " and " << pending.sensitivities << " sensitivity analyses";
    out << " to run; about " << util::format_duration(seconds) << "\n";
    total += seconds;
    worst_total += seconds + worst_extra;
  }
  out << "estimated total: " << util::format_duration(total);
  if (worst_total > total)
    out << "; " << util::format_duration(worst_total) << " if the trunks trained again have other bits (another machine)";
  out << " (from 2 timed training steps of each kind and one timed evaluation batch per model, here)\n";
  return out.str();
}

nlohmann::json run_experiment(const Experiment& e, const RunOptions& options) {
  std::vector<report::SweepEntry> entries;
  std::vector<report::SensitivityEntry> sensitivities;
  std::vector<report::GradientNormEntry> gradient_norms;
  auto check_stop = [&](const std::string& what) {
    if (options.stop && options.stop->load()) throw train::TrainingInterrupted("interrupted before " + what + resume_hint(e));
  };
  const util::DirectoryLock experiment_lock(e.dir, "qrobust run");
  NumericsFingerprints fingerprints;
  for (const auto& run : e.runs) record_checkpoint_identity(e, run, fingerprints);
  auto to_train = runs_to_train(e);
  const auto left_out = left_out_seeds(e, to_train);
  for (const auto seed : left_out)
    spdlog::info("seed {}: not selected (--seeds) and not complete: left out of the tables", seed);
  for (size_t r = 0; r < e.runs.size(); ++r) {
    const auto& run = e.runs[r];
    if (left_out.count(run.seed)) continue;
    const std::string label = "seed " + std::to_string(run.seed) + " " + run.name;
    bool trained_now = false;  // then result files already there describe other weights
    const auto state = train::inspect_run(run.dir, run.config);
    if (!to_train[r]) {
      spdlog::info("{}: already trained ({})", label, run.dir);
    } else {
      trained_now = true;
      if (grew_from_other_trunk(e, run)) {
        spdlog::warn("{}: grew from another trunk than the seed's baseline now; training it again", label);
        fs::remove(train::checkpoint_path(run.dir));
      }
      remove_results(e, run);  // they describe other weights; a stop before they are redone must not keep them
      const auto twin = fs::exists(train::checkpoint_path(run.dir)) ? std::nullopt
                                                                     : find_twin(e, run, current_trunk_sha1(run), fingerprints);
      if (twin) {
        spdlog::info("{}: the same run, trained on this machine, is complete in {}; copying it", label, *twin);
        adopt_twin(e, run, *twin);
        trained_now = false;  // its sweeps are the twin's, and answer this request
      } else {
        spdlog::info("{}: {} into {} (penalty {})", label, state.started ? "resuming" : "training", run.dir,
                     run.config.regularizer.describe());
        try {
          train::train(run.config, {run.dir, state.started, options.observer, options.stop});
        } catch (const train::TrainingInterrupted&) {
          throw train::TrainingInterrupted("interrupted while training " + label + resume_hint(e));
        }
      }
      // A baseline trained again may be another trunk than its variants grew from (grew_from_other_trunk).
      if (run.name == "baseline") to_train = runs_to_train(e);
    }
    if (!run.swept) continue;
    const util::DirectoryLock run_lock(run.dir, "qrobust run");  // its sweeps and sensitivity analyses go here
    gradient_norms.push_back({run.name, run.seed, report::last_gradient_norms(train::log_path(run.dir))});
    for (const auto& analysis : analyses_of(e, run)) {
      const std::string& quantizer = analysis.quantizer->name;
      check_stop((analysis.is_sweep() ? "sweeping " : "the sensitivity analysis of ") + label);
      auto result = trained_now ? std::nullopt : existing_result(e, analysis, run.dir);
      if (!result) {
        const auto checkpoint = train::checkpoint_path(run.dir);
        try {
          if (analysis.is_sweep()) {
            spdlog::info("{}: sweeping with quantizer {} on the {} split", label, quantizer,
                         data::split_name(*analysis.sweep_split));
            auto request = sweep_options(e, analysis);
            request.stop = options.stop;
            result = sweep::run_sweep(analysis.config, checkpoint, request);
          } else {
            spdlog::info("{}: sensitivity at {} bits with quantizer {} on the {} split", label, e.sensitivity.bits,
                         quantizer, data::split_name(e.sensitivity.split));
            result = sweep::run_sensitivity(analysis.config, checkpoint,
                                            {e.sensitivity.bits, e.sensitivity.split, true, options.stop});
          }
        } catch (const sweep::SweepInterrupted&) {
          throw train::TrainingInterrupted((analysis.is_sweep() ? "interrupted while sweeping "
                                                                : "interrupted in the sensitivity analysis of ") +
                                           label + resume_hint(e));
        }
        write_result(e, analysis, *result, run.dir);
      }
      if (analysis.is_sweep())
        entries.push_back({run.name, run.seed, quantizer, data::split_name(*analysis.sweep_split), *result});
      else
        sensitivities.push_back({run.name, run.seed, quantizer, *result});
    }
  }
  auto table = report::make_table(e.name, entries, e.reference);
  report::write_table(table, e.dir);
  for (const auto& reference : e.also_compare_with)
    report::write_table(report::make_table(e.name, entries, reference), e.dir, "table_vs_" + reference);
  std::string warning;
  for (const auto& file : report::write_plots(table, e.dir, warning)) spdlog::info("wrote {}", file);
  // The model's element names, in order, for the gradient-norm figure.
  const auto& first = e.runs.front().config;
  const auto model = models::build_model(first.model, data::dataset_info(first.data).input(), first.seed, torch::kCPU);
  std::vector<std::string> layers, points;
  for (const auto& layer : model->quant_layers()) layers.push_back(layer.name);
  for (const auto& point : model->quant_points()) points.push_back(point->name());
  for (const auto& file : report::write_gradient_norms(e.name, gradient_norms, layers, points, e.dir, warning))
    spdlog::info("wrote {}", file);
  if (!sensitivities.empty()) report::write_sensitivity_table(e.name, sensitivities, e.dir);
  if (!warning.empty()) spdlog::warn("{}", warning);
  return table;
}

}  // namespace qrobust::experiment
