#pragma once
// A sweep-bits document (sweep/sweep.h) on disk: the JSON, and beside it the same table as
// Markdown and CSV for reading.
#include <nlohmann/json.hpp>
#include <string>

namespace qrobust::report {

// Writes FILE.json and, beside it, FILE.md and FILE.csv (each atomically).
void write_sweep(const nlohmann::json& sweep, const std::string& json_path);

// Removes FILE.json and whatever write_sweep, write_sensitivity (report/sensitivity.h) or
// write_mixed_precision (report/mixed_precision.h) writes beside it, where it is there.
void remove_result_files(const std::string& json_path);

}  // namespace qrobust::report
