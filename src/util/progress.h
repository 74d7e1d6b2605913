#pragma once
// One progress line for long work: rewritten in place on a terminal, printed as plain lines
// (at most every few seconds) when stderr is a file or pipe.
#include <chrono>
#include <string>

namespace qrobust::util {

class ProgressLine {
 public:
  // `label` prefixes every line, `total` is the number of items (steps, images) to do.
  ProgressLine(std::string label, int64_t total, std::string unit);

  // Reports that `done` of `total` items are finished; `detail` is appended (e.g. "loss 0.41").
  void update(int64_t done, const std::string& detail = "");
  // Ends the line (a newline on a terminal).
  void finish(const std::string& detail = "");

 private:
  std::string format(int64_t done, const std::string& detail) const;

  std::string label_;
  int64_t total_;
  std::string unit_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
};

// "1h02m", "3m05s", "12s"
std::string format_duration(double seconds);

}  // namespace qrobust::util
