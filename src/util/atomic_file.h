#pragma once
// Writing outputs so that a kill never leaves a half-written file: write a temporary file in
// the same directory, flush it to disk, then rename it over the target.
#include <cstdint>
#include <functional>
#include <limits>
#include <string>

namespace qrobust::util {

// Calls write_to(temp_path), fsyncs the file and renames it to `path`. If write_to throws,
// the temporary file is removed and `path` is left as it was.
void commit_atomically(const std::string& path, const std::function<void(const std::string&)>& write_to);

// Atomically replaces `path` with `contents`.
void write_file_atomically(const std::string& path, const std::string& contents);

// Reads a whole file; throws RuntimeFailure naming the file if it cannot be read or holds more
// than `max_bytes` (a bound on what a crafted or wrong file can make qrobust allocate).
std::string read_file(const std::string& path, uint64_t max_bytes = std::numeric_limits<uint64_t>::max());

// Bounds for read_file: far above any real file of the kind.
constexpr uint64_t kMaxTextFileBytes = 16ull << 20;     // configs, experiment files
constexpr uint64_t kMaxResultFileBytes = 1ull << 30;    // JSON results, logs

}  // namespace qrobust::util
