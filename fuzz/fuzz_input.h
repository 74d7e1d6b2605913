#pragma once
// Shared by the libFuzzer harnesses (scripts/fuzz.sh): the readers take paths, so each input is
// written to a scratch file first; and the errors qrobust promises (UsageError, RuntimeFailure)
// are the expected outcome of a bad input. Anything else escaping (c10::Error, std::bad_alloc,
// out_of_range, ...) aborts, and libFuzzer reports the input as a crash.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "util/errors.h"

namespace qrobust::fuzz {

// A directory of this process's own, made once and reused.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const auto path = std::filesystem::temp_directory_path() / ("qrobust_fuzz_" + std::to_string(getpid()));
    std::filesystem::create_directories(path);
    return path.string();
  }();
  return dir;
}

inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data),
                                                                static_cast<std::streamsize>(size));
  return path;
}

// Runs `read`; qrobust's own errors are fine, anything else aborts.
template <class Read>
void expect_clean(Read&& read) {
  try {
    read();
  } catch (const UsageError&) {
  } catch (const RuntimeFailure&) {
  }
}

}  // namespace qrobust::fuzz
