// `qrobust run --dry-run`: what is left to do and how long it should take (experiment.h).
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "data/datasets.h"
#include "experiment/experiment.h"
#include "experiment/run_state.h"
#include "models/registry.h"
#include "util/progress.h"
#include "util/provenance.h"
#include "util/runtime.h"

namespace qrobust::experiment {
namespace fs = std::filesystem;

namespace {

// What one evaluation costs for a model, and how many elements a sensitivity analysis visits.
struct EvalCost {
  double seconds_per_image = 0;
  size_t layers = 0;    // quantizable layers
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
  return {seconds / static_cast<double>(config.data.eval_batch_size), model->quant_layers().size(),
          model->quant_layers().size() + model->quant_points().size()};
}

// What a PTQ recipe costs per layer it learns (once per bit-width prefix and draw, see
// quant/calibration.h): capturing the layer's inputs runs the network over the calibration
// images twice (quantized and float); an AdaRound iteration is about a forward and a backward
// pass of one layer on a batch, about three forward passes of the whole network over the layers.
double recipe_seconds_per_layer(const config::QuantSettings& quant, const EvalCost& cost, int64_t train_images) {
  if (!quant.has_weight_recipe()) return 0;
  double seconds = 0;
  if (quant.weights_use_calibration())
    seconds += 2.0 * static_cast<double>(std::min(quant.calibration_samples(), train_images)) * cost.seconds_per_image;
  if (quant.rounding() == quant::Rounding::kAdaRound)
    seconds += static_cast<double>(quant.adaround().iterations()) * 3.0 *
               static_cast<double>(quant.adaround().batch_size()) * cost.seconds_per_image /
               static_cast<double>(cost.layers);
  return seconds;
}

// A mixed-precision search (mixed_precision/search.h), round-to-nearest: each criterion's passes
// over the scored val images (a gradient pass about three evaluations, a Hutchinson probe about
// four), then every uniform configuration and every chosen plan on the test split per draw.
double search_seconds(const config::ExperimentConfig& config, int64_t draws, const EvalCost& cost, double test_images,
                      double val_images) {
  const auto& m = config.mixed_precision;
  const double scored = std::min(static_cast<double>(m.score_images()), val_images);
  double scoring = 0;
  for (const auto criterion : m.criteria()) {
    if (criterion == mixed_precision::Criterion::kFirstOrder) scoring += 3;
    if (criterion == mixed_precision::Criterion::kHessianTrace) scoring += 3 + 4.0 * static_cast<double>(m.hutchinson_samples());
    if (criterion == mixed_precision::Criterion::kMeasured)
      scoring += 1 + static_cast<double>(cost.layers * m.weight_bits().size() + (cost.elements - cost.layers) * m.act_bits().size());
  }
  const double plans = static_cast<double>(m.weight_bits().size() * m.act_bits().size() + m.criteria().size() * m.budgets().size());
  return (scoring * scored + (plans * static_cast<double>(draws) + 4) * test_images) * cost.seconds_per_image;
}

// Layers a sweep learns: every layer for each weight bit-width of the grid, per draw where the
// recipe learns from the calibration images.
double layers_learned_by_sweep(const config::QuantSettings& quant, const sweep::SweepOptions& grid, const EvalCost& cost) {
  std::set<int> weight_bits;
  for (const auto& [w, a] : sweep::grid(grid))
    if (w != quant::kFloatBits) weight_bits.insert(w);
  return static_cast<double>(weight_bits.size() * cost.layers) *
         static_cast<double>(quant.weights_use_calibration() ? grid.calibration_draws : 1);
}

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

}  // namespace

std::string describe_plan(const Experiment& e) {
  std::ostringstream out;
  out << "experiment " << e.name << " (" << e.file << "): " << e.seeds.size() << " seeds x "
      << e.runs.size() / e.seeds.size() << " runs, " << e.quantizers.size() << " quantizer settings x " << e.splits.size()
      << " splits x " << sweep::grid(e.sweep).size() + 1 << " configurations x " << e.sweep.calibration_draws
      << " calibration draws each";
  if (e.sensitivity.enabled)
    out << "; sensitivity at " << e.sensitivity.bits << " bits on the " << data::split_name(e.sensitivity.split) << " split";
  if (e.mixed_precision.enabled) out << "; " << e.mixed_precision.searches.size() << " mixed-precision searches per run";
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
      int sweeps = 0, sensitivities = 0, searches = 0;
      double seconds = 0;
      double recipe_seconds = 0;  // of `seconds`: the PTQ recipes' learned steps
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
          const double recipe = layers_learned_by_sweep(analysis.config.quant, sweep_options(e, analysis), cost) *
                                recipe_seconds_per_layer(analysis.config.quant, cost, splits.train.size());
          pending.seconds += evaluations * images_of(*analysis.sweep_split) * cost.seconds_per_image + recipe;
          pending.recipe_seconds += recipe;
        } else if (analysis.is_search()) {
          ++pending.searches;
          pending.seconds += search_seconds(analysis.config, e.sweep.calibration_draws, cost,
                                            images_of(data::Split::kTest), images_of(data::Split::kVal));
        } else {
          ++pending.sensitivities;
          // The recipe learns every layer for the whole model, one layer per one-in plan, and the
          // layers after the one left out per one-out plan: L(L + 3)/2 layers.
          const double recipe = static_cast<double>(cost.layers * (cost.layers + 3) / 2) *
                                recipe_seconds_per_layer(analysis.config.quant, cost, splits.train.size());
          pending.seconds +=
              static_cast<double>(2 * cost.elements + 5) * images_of(e.sensitivity.split) * cost.seconds_per_image + recipe;
          pending.recipe_seconds += recipe;
        }
      }
      return pending;
    };
    // A run that trains from scratch may be copied from another experiment instead (find_twin);
    // a variant's trunk is then the copied baseline's, whose bits are its twin's.
    const bool other_trunk = to_train[r] && grew_from_other_trunk(e, run);
    std::optional<std::string> twin;
    if (to_train[r] && (other_trunk || !fs::exists(train::checkpoint_path(run.dir)))) {
      std::string trunk_sha1 = trunk_identity(e, run);
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
    if (e.mixed_precision.enabled) out << " and " << pending.searches << " mixed-precision searches";
    out << " to run; about " << util::format_duration(seconds);
    if (pending.recipe_seconds > 0)
      out << " (PTQ recipes' learned steps about " << util::format_duration(pending.recipe_seconds) << " of it)";
    out << "\n";
    total += seconds;
    worst_total += seconds + worst_extra;
  }
  out << "estimated total: " << util::format_duration(total);
  if (worst_total > total)
    out << "; " << util::format_duration(worst_total) << " if the trunks trained again have other bits (another machine)";
  out << " (from 2 timed training steps of each kind and one timed evaluation batch per model, here)\n";
  return out.str();
}

}  // namespace qrobust::experiment
