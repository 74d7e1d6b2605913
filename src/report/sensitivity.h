#pragma once
// Rendering of per-layer sensitivity documents (sweep/sensitivity.h): for one run, Markdown and
// CSV beside the JSON and a bar chart (one in / one out accuracy per element); for an
// experiment, one table per quantizer setting with every variant's mean ± std over seeds.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qrobust::report {

// FILE.json and, beside it, FILE.md, FILE.csv and (when gnuplot is installed) FILE.svg/.png.
// Returns the images written; without gnuplot, none, and `warning` says so.
std::vector<std::string> write_sensitivity(const nlohmann::json& sensitivity, const std::string& json_path,
                                           std::string& warning);

struct SensitivityEntry {
  std::string variant;
  int64_t seed = 0;
  std::string quantizer;
  nlohmann::json sensitivity;
};

// DIR/sensitivity.json and DIR/sensitivity.md: per quantizer, per element, per variant, the
// one-in and one-out accuracy and the bound term, mean ± std over seeds.
void write_sensitivity_table(const std::string& experiment, const std::vector<SensitivityEntry>& entries,
                             const std::string& dir);

}  // namespace qrobust::report
