#pragma once
// Rendering of mixed-precision documents (mixed_precision/search.h): for one run, Markdown and
// CSV beside the JSON, every chosen plan as a plan file `sweep-bits --plan` reads, and a Pareto
// chart (accuracy against average bits, one line per criterion, the uniform points marked); for
// an experiment, per budget and criterion the mean ± std over seeds and the paired differences
// from uniform at the nearest budget at or below and from a reference variant's plan.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qrobust::report {

// FILE.json and, beside it, FILE.md, FILE.csv, FILE_plans/<criterion>_<budget>.json and (when
// gnuplot is installed) FILE.svg/.png. Returns the images written; without gnuplot, none, and
// `warning` says so.
std::vector<std::string> write_mixed_precision(const nlohmann::json& search, const std::string& json_path,
                                               std::string& warning);

// Where write_mixed_precision puts the plan of `criterion` at `budget` for FILE.json.
std::string plan_file_path(const std::string& json_path, const std::string& criterion, double budget);

struct MixedPrecisionEntry {
  std::string variant;
  int64_t seed = 0;
  std::string quantizer;
  nlohmann::json search;
};

// DIR/mixed_precision.json and DIR/mixed_precision.md (see above), each variant's plans also
// compared with the `reference` variant's at the same budget and criterion, paired by seed.
void write_mixed_precision_table(const std::string& experiment, const std::vector<MixedPrecisionEntry>& entries,
                                 const std::string& dir, const std::string& reference = "none");

}  // namespace qrobust::report
