#pragma once
// Experiment tables in the paper's shape: one row per variant, one column per quantization
// configuration (fp32, w8a8, w6a6, ...), one table per (quantizer setting, split), built from
// the variants' sweep-bits documents of every seed. A cell is the mean ± std over seeds (each
// seed's value already the mean over its calibration draws). A comparison section gives, for
// every variant, its paired difference from a reference variant (paired by seed) with the 95 %
// t-interval. The same sweeps, turned around, give one table per variant with a row per quantizer
// setting, compared with a reference setting: what each PTQ recipe recovers over round-to-nearest
// on the same weights. Plots show accuracy against bit-width with ±1 std error bars, via gnuplot.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qrobust::report {

// One sweep document (sweep/sweep.h) of one variant and seed under one quantizer setting and split.
struct SweepEntry {
  std::string variant;
  int64_t seed = 0;
  std::string quantizer;
  std::string split;
  nlohmann::json sweep;
};

// {"experiment", "rows_are": "variant", "reference", "columns": [configs],
//  "tables": [{"quantizer", "split", "settings",
//   "rows": [{"variant", "accuracy": {config: {"mean", "std", "n", "min", "max", "seeds", "values"}}}],
//   "comparison": [{"variant", "difference": {config: {"mean", "std", "n", "low", "high",
//                   "defined", "excludes_zero"}}}]}]}
// in the entries' order. The comparison is left out when no variant is named `reference`.
nlohmann::json make_table(const std::string& experiment, const std::vector<SweepEntry>& entries,
                          const std::string& reference = "none");

// The same, turned around: {"experiment", "rows_are": "quantizer", "reference", "columns", "tables":
//   [{"variant", "split", "settings": {quantizer: settings}, "rows": [{"quantizer", "accuracy"}],
//     "comparison": [{"quantizer", "difference"}]}]}, the differences from `reference_quantizer`
// paired by seed.
nlohmann::json make_quantizer_table(const std::string& experiment, const std::vector<SweepEntry>& entries,
                                    const std::string& reference_quantizer);

// DIR/NAME.json, DIR/NAME.md and DIR/NAME.csv (one line per cell), each atomically, for either kind.
void write_table(const nlohmann::json& table, const std::string& dir, const std::string& name = "table");

// DIR/plot_<quantizer>.svg and .png for every quantizer's test-split table of a make_table
// table (the first split when there is no test split), via gnuplot. Returns the files written; when gnuplot is not
// installed, writes nothing and says so in `warning`.
std::vector<std::string> write_plots(const nlohmann::json& table, const std::string& dir, std::string& warning);

}  // namespace qrobust::report
