#pragma once
// Internal to experiment/: what an experiment's run directories hold and how its runs relate.
// Which result files a run owes (analyses_of) and whether they are there and answer the request,
// which trunk a variant grew from, and which complete run of another experiment is the same
// computation (a twin, copied instead of trained). The plan (plan.cpp) and the run
// (experiment.cpp) both decide from these.
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "experiment/experiment.h"

namespace qrobust::experiment {

// One result file the experiment asks of a run: the sweep with one quantizer setting on one
// split, the sensitivity analysis with one quantizer setting, or one mixed-precision search
// with one quantizer setting. Whatever counts, finds, copies, removes or runs a run's results
// walks analyses_of.
struct Analysis {
  const Overrides* quantizer;
  std::optional<data::Split> sweep_split;  // none: the sensitivity analysis or a search
  config::ExperimentConfig config;         // the run's config with the quantizer's (and search's) overrides
  const Overrides* search = nullptr;       // the mixed-precision search, if this is one
  bool is_sweep() const { return sweep_split.has_value(); }
  bool is_search() const { return search != nullptr; }
  bool is_sensitivity() const { return !is_sweep() && !is_search(); }
};

std::vector<Analysis> analyses_of(const Experiment& e, const PlannedRun& run);
sweep::SweepOptions sweep_options(const Experiment& e, const Analysis& analysis);
// The result of `analysis` in `run_dir`, where it is there and answers the current request.
std::optional<nlohmann::json> existing_result(const Experiment& e, const Analysis& analysis, const std::string& run_dir);
void write_result(const Experiment& e, const Analysis& analysis, const nlohmann::json& result, const std::string& run_dir);
// Every sweep and sensitivity file of `run` the experiment asks for, in all its formats.
void remove_results(const Experiment& e, const PlannedRun& run);

// A run's metrics.json, or an empty object where it is missing or unreadable.
nlohmann::json read_metrics(const std::string& run_dir);
// A string field of a metrics object ("" where absent or not a string).
std::string text_field(const nlohmann::json& object, const char* key);

// Whether a finished variant grew from a trunk other than its seed's baseline as it is now.
bool grew_from_other_trunk(const Experiment& e, const PlannedRun& run);
// The SHA-1 of the file `run` starts from as it is now ("" for none, "?" while it is not there).
std::string current_trunk_sha1(const PlannedRun& run);
// The SHA-1 that names the weights `run` starts from, for finding its twin: current_trunk_sha1,
// except where the seed's baseline is a copy of another experiment's (adopt_twin): the copy is
// saved with this run's own config, so its bytes differ but not its weights, and the twin's
// checkpoint SHA-1 names them, as the runs that grew from the twin recorded it.
std::string trunk_identity(const Experiment& e, const PlannedRun& run);

// This machine's numerics fingerprints (train/trainer.h), each computed once per plan or run: one
// costs a training step, and the runs of an experiment share a few.
class NumericsFingerprints {
 public:
  const std::string& of(const config::ExperimentConfig& config);

 private:
  std::map<std::string, std::string> known_;
};

// Gives results from before checkpoint_sha1, trunk_sha1 and numerics_fingerprint those fields
// while the checkpoints they name are here.
void record_checkpoint_identity(const Experiment& e, const PlannedRun& run, NumericsFingerprints& fingerprints);
// Another experiment's complete run of this seed that is `run` trained already, grown from a
// trunk whose SHA-1 is `trunk_sha1`, with this machine's numerics.
std::optional<std::string> find_twin(const Experiment& e, const PlannedRun& run, const std::string& trunk_sha1,
                                     NumericsFingerprints& fingerprints);
// Makes `run` the copy of its twin.
void adopt_twin(const Experiment& e, const PlannedRun& run, const std::string& twin);

bool is_selected(const Experiment& e, int64_t seed);
// The seeds not selected that still have something to train or sweep: the tables leave them out.
std::set<int64_t> left_out_seeds(const Experiment& e, const std::vector<bool>& to_train);

}  // namespace qrobust::experiment
