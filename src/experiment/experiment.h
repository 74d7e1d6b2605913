#pragma once
// `qrobust run --config experiments/NAME.yaml`: a base config, a list of variants (overrides of
// it), seeds and sweep settings. For every seed, every variant is trained (or fine-tuned from a
// baseline trained once per seed from the base config), swept under each quantizer setting on
// each split, and the results are collected into tables and plots (report/):
//   RESULTS/NAME/seed_<s>/baseline/     the seed's shared baseline run, when `baseline: true`
//   RESULTS/NAME/seed_<s>/<variant>/    a run directory (train/trainer.h) and its sweeps,
//                                       sweep_<quantizer>_<split>.{json,md,csv}, and
//                                       sensitivity_<quantizer>_<split>.* when asked for
//   RESULTS/NAME/table.{json,md,csv}    rows: variants, mean ± std over seeds; columns: fp32 and
//                                       each bit pair; paired differences from the reference
//   RESULTS/NAME/table_by_quantizer.{json,md,csv}  with two or more quantizer settings: per
//                                       variant, rows: quantizer settings; paired differences
//                                       from the reference quantizer setting
//   RESULTS/NAME/plot_<quantizer>.{svg,png}, plot_gradient_norms.{svg,png}, gradient_norms.json
//   RESULTS/NAME/sensitivity.{json,md}  when asked for
// Re-running skips what is complete and resumes an interrupted training run, seed by seed.
// A run that another experiment under the same results root has already trained here (the
// same computation from the same trunk, with this machine's numerics) is copied, not trained.
//
// Experiment file:
//   name: cifar10_resnet20_cpu            # default: the file name
//   base: configs/cifar10_resnet20.yaml   # a config file (paths relative to the working dir)
//   seeds: [1, 2, 3]                      # default: the base config's seed
//   reference: none                       # the variant the others are compared with (default none)
//   also_compare_with: [grad_l1]          # optional: more references, one table each
//                                         # (RESULTS/NAME/table_vs_grad_l1.{json,md,csv})
//   reference_quantizer: rtn              # the quantizer setting the others are compared with in
//                                         # table_by_quantizer (default: the first listed)
//   set: {train.epochs: 30}               # overrides of the base (optional)
//   baseline: true                        # train the base once; variants fine-tune from it
//   finetune: {train.epochs: 3, train.lr: 0.01}  # overrides every variant gets (optional)
//   branch_epoch: 20                      # instead of finetune: the baseline stops after epoch 20
//                                         # of the base schedule, every variant continues that
//                                         # schedule (lr and momentum included) to its end; the
//                                         # baseline is then a trunk, trained but not swept
//   variants:                             # name: overrides, in table order
//     none: {}
//     grad_l1: {regularizer.name: grad_l1, regularizer.lambda_w: 1.0e-4}
//     ste@4: {quant_aware.weight_bits: 4, quant_aware.act_bits: 4}
//   sweep:
//     weight_bits: [8, 6, 4]
//     act_bits: [8, 6, 4]
//     pairs: true
//     splits: [val, test]
//     calibration_draws: 3                # independent calibration samples per sweep (default 1)
//     quantizers:                         # name: overrides of quant.*, one table each
//       per_tensor: {}
//       per_channel: {quant.weight_granularity: per_channel}
//   sensitivity:                          # optional: per-layer sensitivity (sweep/sensitivity.h)
//     bits: 4
//     split: test
//     variants: [none, grad_l1]           # default: every variant
//     quantizers: [per_tensor]            # default: every quantizer setting
//   mixed_precision:                      # optional: per-layer bit allocation (mixed_precision/search.h)
//     variants: [none, grad_l1]           # default: every variant
//     quantizers: [per_tensor]            # default: every quantizer setting
//     searches:                           # name: overrides of mixed_precision.*, one search each
//       a8: {mixed_precision.act_bits: [8]}   # (default: one search, "default", with the config's settings)
//   Each search writes RUN/mixed_precision_<quantizer>_<search>.* (with sweep.calibration_draws
//   draws) and RESULTS/NAME/mixed_precision.{json,md} compares it with uniform over seeds.
#include <atomic>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "sweep/sweep.h"
#include "train/trainer.h"

namespace qrobust::experiment {

// Something named with the overrides that make it.
struct Overrides {
  std::string name;
  std::vector<std::string> assignments;  // "key.path=value"
};

// One training run of the experiment, its config resolved.
struct PlannedRun {
  std::string name;  // "baseline" or the variant's name
  int64_t seed = 0;
  config::ExperimentConfig config;
  std::string dir;
  int64_t first_epoch = 0;  // the epoch it starts after: the branch epoch for a branched variant
  bool swept = true;        // false for a branch trunk: a mid-schedule model nothing is compared with
};

struct SensitivityPlan {
  bool enabled = false;
  int bits = 4;
  data::Split split = data::Split::kTest;
  std::vector<std::string> variants;    // empty: every run
  std::vector<std::string> quantizers;  // empty: every quantizer setting
  bool covers(const PlannedRun& run, const Overrides& quantizer) const;
};

struct MixedPrecisionPlan {
  bool enabled = false;
  std::vector<std::string> variants;    // empty: every run
  std::vector<std::string> quantizers;  // empty: every quantizer setting
  std::vector<Overrides> searches;      // overrides of mixed_precision.*
  bool covers(const PlannedRun& run, const Overrides& quantizer) const;
};

struct Experiment {
  std::string name;
  std::string file;
  std::string dir;  // RESULTS/NAME
  std::vector<int64_t> seeds;
  // The seeds to train and sweep (`qrobust run --seeds`; empty: all). The tables take the
  // other seeds too where they are complete, and leave them out where not.
  std::vector<int64_t> selected_seeds;
  std::string reference = "none";
  std::vector<std::string> also_compare_with;  // table_vs_<variant>: the same table against these
  std::string reference_quantizer;             // table_by_quantizer's reference: a quantizers name
  std::vector<PlannedRun> runs;  // per seed: the baseline first (when shared), then the variants
  std::vector<Overrides> quantizers;
  std::vector<data::Split> splits;
  sweep::SweepOptions sweep;
  SensitivityPlan sensitivity;
  MixedPrecisionPlan mixed_precision;
};

// Reads and validates the experiment file and every variant's config (so a bad variant fails
// before anything trains); run directories go under `results_root`/NAME.
Experiment load_experiment(const std::string& path, const std::string& results_root);

// Sets experiment.selected_seeds; a seed the file does not list is a UsageError.
void select_seeds(Experiment& experiment, const std::vector<int64_t>& seeds);

// The config `run` is swept with under `quantizer`.
config::ExperimentConfig sweep_config(const PlannedRun& run, const Overrides& quantizer);
// ... and searched with under `quantizer` and a mixed-precision search's overrides.
config::ExperimentConfig search_config(const PlannedRun& run, const Overrides& quantizer, const Overrides& search);

struct RunOptions {
  train::TrainObserver* observer = nullptr;  // optional
  const std::atomic<bool>* stop = nullptr;   // optional
};

// Which runs still need training, in e.runs' order. A run is done when its metrics and
// checkpoint are there, or when its metrics and every result the experiment asks of it are
// (checkpoints are not committed, so a fresh clone has only the results); a seed's baseline is
// trained again when a variant of that seed still needs its checkpoint. A variant that grew from
// another trunk than its seed's baseline as it is now (a baseline trained again on another
// machine has other bits; metrics.json's trunk_sha1 against the baseline's checkpoint_sha1) is
// trained again with all its results, so that a seed's variants always share one trunk.
std::vector<bool> runs_to_train(const Experiment& experiment);

// The plan, one line per run (done / resume at epoch k / train) and per pending sweep, with the
// time each is expected to take from a short measurement of its training step here; runs of
// seeds not selected get one line saying whether the tables take them.
std::string describe_plan(const Experiment& experiment);

// Does everything that is not done yet; returns the table document.
nlohmann::json run_experiment(const Experiment& experiment, const RunOptions& options);

}  // namespace qrobust::experiment
