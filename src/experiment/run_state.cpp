#include "experiment/run_state.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "data/datasets.h"
#include "io/checkpoint.h"
#include "models/registry.h"
#include "report/mixed_precision.h"
#include "report/sensitivity.h"
#include "report/sweep_files.h"
#include "train/schedule.h"
#include "util/atomic_file.h"
#include "util/provenance.h"
#include "util/runtime.h"

namespace qrobust::experiment {
namespace fs = std::filesystem;

namespace {

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

// An existing mixed-precision file answers the current request: same quantizer and search
// settings, same calibration draws.
std::optional<nlohmann::json> existing_search(const std::string& path, const config::ExperimentConfig& config,
                                              int64_t draws) {
  if (!fs::exists(path)) return std::nullopt;
  const auto doc = nlohmann::json::parse(util::read_file(path, util::kMaxResultFileBytes), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.contains("plans") || !doc.contains("uniform") || !doc.contains("header")) return std::nullopt;
  const auto& header = doc.at("header");
  if (!header.contains("quant") || header.at("quant") != config.quant.to_json() || !header.contains("mixed_precision") ||
      header.at("mixed_precision") != config.mixed_precision.to_json() || header.value("calibration_draws", int64_t{0}) != draws)
    return std::nullopt;
  return doc;
}

// Where `analysis` of the run in `run_dir` is written.
std::string result_path(const Experiment& e, const Analysis& analysis, const std::string& run_dir) {
  if (analysis.is_search())
    return run_dir + "/mixed_precision_" + analysis.quantizer->name + "_" + analysis.search->name + ".json";
  const auto split = analysis.sweep_split.value_or(e.sensitivity.split);
  return run_dir + (analysis.is_sweep() ? "/sweep_" : "/sensitivity_") + analysis.quantizer->name + "_" +
         data::split_name(split) + ".json";
}

// Every sweep and sensitivity file the experiment asks of `run` is there and matches.
bool results_complete(const Experiment& e, const PlannedRun& run) {
  for (const auto& analysis : analyses_of(e, run))
    if (!existing_result(e, analysis, run.dir)) return false;
  return true;
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

// What makes two runs the same computation: the config but for its name, the trunk's path (its
// bits are compared apart), and where it runs (the numerics fingerprint compares that).
std::string computation_of(config::ExperimentConfig config) {
  config.name.clear();
  config.train.branch_from.clear();
  config.threads = 0;
  config.device.clear();
  config.mixed_precision = {};  // what is searched after training
  return config::to_yaml(config);
}

// The config without what the fingerprint's plain step at seed 0 does not read.
std::string fingerprint_key(config::ExperimentConfig config) {
  config.name.clear();
  config.seed = 0;
  config.train.branch_from.clear();
  config.train.init_from.clear();
  config.train.stop_after = 0;
  config.regularizer = {};
  config.quant = {};
  config.quant_aware = {};
  config.mixed_precision = {};
  return config::to_yaml(config);
}

}  // namespace

std::vector<Analysis> analyses_of(const Experiment& e, const PlannedRun& run) {
  std::vector<Analysis> analyses;
  if (!run.swept) return analyses;
  for (const auto& quantizer : e.quantizers) {
    const auto config = sweep_config(run, quantizer);
    for (const auto split : e.splits) analyses.push_back({&quantizer, split, config});
    if (e.sensitivity.covers(run, quantizer)) analyses.push_back({&quantizer, std::nullopt, config});
    if (e.mixed_precision.covers(run, quantizer))
      for (const auto& search : e.mixed_precision.searches)
        analyses.push_back({&quantizer, std::nullopt, search_config(run, quantizer, search), &search});
  }
  return analyses;
}

sweep::SweepOptions sweep_options(const Experiment& e, const Analysis& analysis) {
  auto options = e.sweep;
  options.split = *analysis.sweep_split;
  return options;
}

std::optional<nlohmann::json> existing_result(const Experiment& e, const Analysis& analysis, const std::string& run_dir) {
  const auto path = result_path(e, analysis, run_dir);
  if (analysis.is_search()) return existing_search(path, analysis.config, e.sweep.calibration_draws);
  return analysis.is_sweep() ? existing_sweep(path, analysis.config, sweep_options(e, analysis))
                             : existing_sensitivity(path, analysis.config, e.sensitivity);
}

void write_result(const Experiment& e, const Analysis& analysis, const nlohmann::json& result, const std::string& run_dir) {
  const auto path = result_path(e, analysis, run_dir);
  if (analysis.is_sweep()) return report::write_sweep(result, path);
  std::string warning;
  if (analysis.is_search())
    report::write_mixed_precision(result, path, warning);
  else
    report::write_sensitivity(result, path, warning);
  if (!warning.empty()) spdlog::warn("{}", warning);
}

void remove_results(const Experiment& e, const PlannedRun& run) {
  for (const auto& analysis : analyses_of(e, run)) report::remove_result_files(result_path(e, analysis, run.dir));
}

nlohmann::json read_metrics(const std::string& run_dir) {
  const auto path = train::metrics_path(run_dir);
  if (!fs::exists(path)) return nlohmann::json::object();
  auto metrics = nlohmann::json::parse(util::read_file(path, util::kMaxResultFileBytes), nullptr, /*allow_exceptions=*/false);
  return metrics.is_object() ? metrics : nlohmann::json::object();
}

std::string text_field(const nlohmann::json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
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

std::string current_trunk_sha1(const PlannedRun& run) {
  const auto trunk = train::starting_checkpoint(run.config);
  if (trunk.empty()) return "";
  return fs::exists(trunk) ? util::file_sha1(trunk) : "?";
}

std::string trunk_identity(const Experiment& e, const PlannedRun& run) {
  const std::string current = current_trunk_sha1(run);
  const PlannedRun* baseline = baseline_of(e, run);
  if (baseline == nullptr || current.empty() || current == "?") return current;
  const auto metrics = read_metrics(baseline->dir);
  const std::string twin = text_field(metrics, "copied_from");
  if (twin.empty() || text_field(metrics, "checkpoint_sha1") != current) return current;
  const std::string twin_sha1 = text_field(read_metrics(twin), "checkpoint_sha1");
  return twin_sha1.empty() ? current : twin_sha1;
}

const std::string& NumericsFingerprints::of(const config::ExperimentConfig& config) {
  auto& fingerprint = known_[fingerprint_key(config)];
  if (fingerprint.empty()) fingerprint = train::numerics_fingerprint(config, util::resolve_device(config.device));
  return fingerprint;
}

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

bool is_selected(const Experiment& e, int64_t seed) {
  return e.selected_seeds.empty() ||
         std::find(e.selected_seeds.begin(), e.selected_seeds.end(), seed) != e.selected_seeds.end();
}

std::set<int64_t> left_out_seeds(const Experiment& e, const std::vector<bool>& to_train) {
  std::set<int64_t> left_out;
  for (size_t r = 0; r < e.runs.size(); ++r)
    if (!is_selected(e, e.runs[r].seed) && !left_out.count(e.runs[r].seed) &&
        (to_train[r] || !results_complete(e, e.runs[r])))
      left_out.insert(e.runs[r].seed);
  return left_out;
}

}  // namespace qrobust::experiment
