#pragma once
// What built this binary, recorded in every output so a result can be traced to its code.
#include <nlohmann/json.hpp>

#include <string>

namespace qrobust::util {

std::string qrobust_version();  // e.g. "0.1.0"
std::string git_sha();          // short SHA at build time, "-dirty" if the tree had changes
std::string libtorch_version(); // e.g. "1.13.1"
std::string version_line();     // the `qrobust --version` text

// {"qrobust": ..., "git_sha": ..., "libtorch": ..., "host": ..., "cpu": ..., "time_utc": ...}. The
// CPU matters: oneDNN picks its kernels and their blocking by CPU, so the same run on another
// machine gives other bits.
nlohmann::json provenance();

// The SHA-1 of a file's bytes, as 40 hex digits: which checkpoint a run started from. A file
// that cannot be read is a RuntimeFailure naming it.
std::string file_sha1(const std::string& path);

}  // namespace qrobust::util
