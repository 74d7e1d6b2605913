// `qrobust run`: trains, copies and sweeps what is not done yet, then tabulates (experiment.h).
#include "experiment/experiment.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "data/datasets.h"
#include "experiment/run_state.h"
#include "mixed_precision/search.h"
#include "models/registry.h"
#include "report/gradient_norms.h"
#include "report/mixed_precision.h"
#include "report/sensitivity.h"
#include "report/sweep_files.h"
#include "report/table.h"
#include "sweep/sensitivity.h"
#include "util/directory_lock.h"

namespace qrobust::experiment {
namespace fs = std::filesystem;

namespace {

std::string resume_hint(const Experiment& e) { return "; run `qrobust run --config " + e.file + "` again to continue"; }

}  // namespace

nlohmann::json run_experiment(const Experiment& e, const RunOptions& options) {
  std::vector<report::SweepEntry> entries;
  std::vector<report::SensitivityEntry> sensitivities;
  std::vector<report::MixedPrecisionEntry> searches;
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
                                                                     : find_twin(e, run, trunk_identity(e, run), fingerprints);
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
      const std::string doing = analysis.is_sweep()    ? "sweeping "
                                : analysis.is_search() ? "the mixed-precision search of "
                                                       : "the sensitivity analysis of ";
      check_stop(doing + label);
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
          } else if (analysis.is_search()) {
            spdlog::info("{}: mixed-precision search {} with quantizer {}", label, analysis.search->name, quantizer);
            result = mixed_precision::run_mixed_precision(analysis.config, checkpoint,
                                                          {e.sweep.calibration_draws, true, options.stop});
          } else {
            spdlog::info("{}: sensitivity at {} bits with quantizer {} on the {} split", label, e.sensitivity.bits,
                         quantizer, data::split_name(e.sensitivity.split));
            result = sweep::run_sensitivity(analysis.config, checkpoint,
                                            {e.sensitivity.bits, e.sensitivity.split, true, options.stop});
          }
        } catch (const sweep::SweepInterrupted&) {
          throw train::TrainingInterrupted((analysis.is_sweep() ? "interrupted while " : "interrupted in ") + doing + label +
                                           resume_hint(e));
        }
        write_result(e, analysis, *result, run.dir);
      }
      if (analysis.is_sweep())
        entries.push_back({run.name, run.seed, quantizer, data::split_name(*analysis.sweep_split), *result});
      else if (analysis.is_search())
        searches.push_back({run.name, run.seed, quantizer + ", search " + analysis.search->name, *result});
      else
        sensitivities.push_back({run.name, run.seed, quantizer, *result});
    }
  }
  auto table = report::make_table(e.name, entries, e.reference);
  report::write_table(table, e.dir);
  for (const auto& reference : e.also_compare_with)
    report::write_table(report::make_table(e.name, entries, reference), e.dir, "table_vs_" + reference);
  if (e.quantizers.size() > 1)
    report::write_table(report::make_quantizer_table(e.name, entries, e.reference_quantizer), e.dir, "table_by_quantizer");
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
  if (!searches.empty()) report::write_mixed_precision_table(e.name, searches, e.dir, e.reference);
  if (!warning.empty()) spdlog::warn("{}", warning);
  return table;
}

}  // namespace qrobust::experiment
