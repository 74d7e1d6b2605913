// Reading an experiment file: its runs, sweeps and sensitivity request (experiment.h).
#include "experiment/experiment.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <regex>
#include <set>

#include "util/atomic_file.h"
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

bool listed(const std::vector<std::string>& names, const std::string& name) {
  return names.empty() || std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

bool SensitivityPlan::covers(const PlannedRun& run, const Overrides& quantizer) const {
  return enabled && run.swept && listed(variants, run.name) && listed(quantizers, quantizer.name);
}

bool MixedPrecisionPlan::covers(const PlannedRun& run, const Overrides& quantizer) const {
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
  e.reference_quantizer = s.text("reference_quantizer", e.quantizers.front().name);
  if (std::none_of(e.quantizers.begin(), e.quantizers.end(),
                   [&](const Overrides& q) { return q.name == e.reference_quantizer; }))
    s.fail("reference_quantizer", "\"" + e.reference_quantizer + "\" is not one of sweep.quantizers");
  try {
    sweep::grid(e.sweep);
  } catch (const UsageError& error) {
    sweep_section.fail("weight_bits", error.what());
  }
  sweep_section.finish();

  // Which variants and quantizer settings an analysis section covers (empty: all).
  auto read_selection = [&](config::YamlSection& section, std::vector<std::string>& variants_out,
                            std::vector<std::string>& quantizers_out) {
    variants_out = section.strings("variants", {});
    for (const auto& name : variants_out)
      if (std::find(variant_names.begin(), variant_names.end(), name) == variant_names.end() &&
          !(name == "baseline" && shared_baseline))
        section.fail("variants", "\"" + name + "\" is not one of the variants");
      else if (name == "baseline" && branch_epoch > 0)
        section.fail("variants", "the baseline is a trunk the variants branch from (branch_epoch); it is not swept");
    quantizers_out = section.strings("quantizers", {});
    for (const auto& name : quantizers_out)
      if (std::none_of(e.quantizers.begin(), e.quantizers.end(), [&](const Overrides& q) { return q.name == name; }))
        section.fail("quantizers", "\"" + name + "\" is not one of sweep.quantizers");
  };
  if (s.has("sensitivity")) {
    auto section = s.section("sensitivity");
    e.sensitivity.enabled = true;
    e.sensitivity.bits = static_cast<int>(section.integer("bits", 4));
    if (e.sensitivity.bits < 2 || e.sensitivity.bits > 16)
      section.fail("bits", "must be 2..16, got " + std::to_string(e.sensitivity.bits));
    e.sensitivity.split = section.choice("split", data::Split::kTest, data::kEvaluationSplitNames);
    read_selection(section, e.sensitivity.variants, e.sensitivity.quantizers);
    section.finish();
  }
  if (s.has("mixed_precision")) {
    auto section = s.section("mixed_precision");
    e.mixed_precision.enabled = true;
    read_selection(section, e.mixed_precision.variants, e.mixed_precision.quantizers);
    auto searches = section.section("searches");
    for (const auto& name : section.keys("searches")) {
      check_name(searches, name, name, "search name");
      auto assignments = searches.assignments(name);
      for (const auto& a : assignments)
        if (a.rfind("mixed_precision.", 0) != 0)
          searches.fail(name, "may only set mixed_precision.* keys, got " + a.substr(0, a.find('=')));
      e.mixed_precision.searches.push_back({name, assignments});
    }
    if (e.mixed_precision.searches.empty()) e.mixed_precision.searches.push_back({"default", {}});
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
      if (e.mixed_precision.covers(run, quantizer)) {
        if (config.data.val_size == 0)
          throw ConfigError(path + ": mixed precision scores on the val split, but " + run.name +
                            " holds out no validation images (data.val_size)");
        for (const auto& search : e.mixed_precision.searches) try {
            search_config(run, quantizer, search);
          } catch (const ConfigError& error) {
            throw ConfigError(path + ": mixed-precision search \"" + search.name + "\": " + error.what());
          }
      }
    }
  return e;
}

config::ExperimentConfig sweep_config(const PlannedRun& run, const Overrides& quantizer) {
  return config::parse_config(config::to_yaml(run.config), run.dir + "/config.yaml", quantizer.assignments);
}

config::ExperimentConfig search_config(const PlannedRun& run, const Overrides& quantizer, const Overrides& search) {
  return config::parse_config(config::to_yaml(run.config), run.dir + "/config.yaml",
                              joined(quantizer.assignments, search.assignments));
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

}  // namespace qrobust::experiment
