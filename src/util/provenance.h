#pragma once
// What built this binary, recorded in every output so a result can be traced to its code.
#include <nlohmann/json.hpp>

#include <string>

namespace qrobust::util {

std::string qrobust_version();  // e.g. "0.1.0"
std::string git_sha();          // short SHA at build time, "-dirty" if the tree had changes
std::string libtorch_version(); // e.g. "1.13.1"
std::string version_line();     // the `qrobust --version` text

// {"qrobust": ..., "git_sha": ..., "libtorch": ..., "host": ..., "time_utc": ...}
nlohmann::json provenance();

}  // namespace qrobust::util
