#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

namespace qrobust::util {
using Clock = std::chrono::steady_clock;

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  if (s >= 3600)
    std::snprintf(text, sizeof(text), "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s % 3600 / 60));
  else if (s >= 60)
    std::snprintf(text, sizeof(text), "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else
    std::snprintf(text, sizeof(text), "%llds", static_cast<long long>(s));
  return text;
}

ProgressLine::ProgressLine(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), total_(total), unit_(std::move(unit)), terminal_(::isatty(STDERR_FILENO) == 1),
      start_(Clock::now()), last_print_(start_) {}

std::string ProgressLine::format(int64_t done, const std::string& detail) const {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  std::string line = label_ + " " + std::to_string(done) + "/" + std::to_string(total_) + " " + unit_;
  char numbers[96];
  std::snprintf(numbers, sizeof(numbers), " | %.1f %s/s", rate, unit_.c_str());
  line += numbers;
  if (done < total_ && rate > 0) line += " | ETA " + format_duration(static_cast<double>(total_ - done) / rate);
  else line += " | " + format_duration(elapsed);
  if (!detail.empty()) line += " | " + detail;
  return line;
}

void ProgressLine::update(int64_t done, const std::string& detail) {
  const auto now = Clock::now();
  const double since_print = std::chrono::duration<double>(now - last_print_).count();
  if (terminal_) {
    if (since_print < 0.2) return;
    std::fprintf(stderr, "\r\033[K%s", format(done, detail).c_str());
  } else {
    if (since_print < 10.0) return;
    std::fprintf(stderr, "%s\n", format(done, detail).c_str());
  }
  std::fflush(stderr);
  last_print_ = now;
}

void ProgressLine::finish(const std::string& detail) {
  std::fprintf(stderr, terminal_ ? "\r\033[K%s\n" : "%s\n", format(total_, detail).c_str());
  std::fflush(stderr);
}

}  // namespace qrobust::util
