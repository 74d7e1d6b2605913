#pragma once
// The two kinds of failure the CLI distinguishes: a mistake in what the user asked for
// (exit code 2) and a failure while doing it (exit code 1).
#include <stdexcept>
#include <string>

namespace qrobust {

// Bad configuration, flags, or arguments: the user can fix the request.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Something went wrong while running a valid request (bad data file, diverged training, I/O).
class RuntimeFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A c10::Error's message without the C++ backtrace LibTorch appends, for one-line errors.
std::string first_line(const std::string& message);

}  // namespace qrobust
