#pragma once
// Experiment tables in the paper's shape: one row per variant, one column per quantization
// configuration (fp32, w8a8, w6a6, ...), one table per (quantizer setting, split), built from
// the variants' sweep-bits documents; and accuracy-against-bit-width plots drawn by gnuplot.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qrobust::report {

// One sweep document (sweep/sweep.h) of one variant under one quantizer setting and split.
struct SweepEntry {
  std::string variant;
  std::string quantizer;
  std::string split;
  nlohmann::json sweep;
};

// {"experiment", "columns": [configs], "tables": [{"quantizer", "split", "settings",
//  "rows": [{"variant", "accuracy": {config: value}}]}]} in the entries' order.
nlohmann::json make_table(const std::string& experiment, const std::vector<SweepEntry>& entries);

// DIR/table.json, DIR/table.md and DIR/table.csv, each atomically.
void write_table(const nlohmann::json& table, const std::string& dir);

// DIR/plot_<quantizer>.svg and .png for every quantizer's test-split table (the first split
// when there is no test split), via gnuplot. Returns the files written; when gnuplot is not
// installed, writes nothing and says so in `warning`.
std::vector<std::string> write_plots(const nlohmann::json& table, const std::string& dir, std::string& warning);

}  // namespace qrobust::report
