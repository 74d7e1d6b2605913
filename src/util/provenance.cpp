#include "util/provenance.h"

#include <torch/torch.h>
#include <unistd.h>

#include <c10/util/hash.h>

#include <ctime>
#include <fstream>
#include <iterator>

#include "qrobust/build_info.h"
#include "util/errors.h"

namespace qrobust::util {

std::string qrobust_version() { return QROBUST_VERSION; }
std::string git_sha() { return QROBUST_GIT_SHA; }
std::string libtorch_version() { return TORCH_VERSION; }

std::string version_line() {
  return "qrobust " + qrobust_version() + " (git " + git_sha() + ", LibTorch " + libtorch_version() + ")";
}

namespace {
// /proc/cpuinfo's first "model name", or "" where there is none.
std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) return "";
    const auto start = line.find_first_not_of(' ', colon + 1);
    return start == std::string::npos ? "" : line.substr(start);
  }
  return "";
}
}  // namespace

nlohmann::json provenance() {
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return {{"qrobust", qrobust_version()}, {"git_sha", git_sha()}, {"libtorch", libtorch_version()},
          {"host", host}, {"cpu", cpu_model()}, {"time_utc", stamp}};
}

std::string file_sha1(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RuntimeFailure(path + ": cannot be read");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw RuntimeFailure(path + ": read error");
  // c10::sha1 leaves its state unset for an empty string.
  return bytes.empty() ? "da39a3ee5e6b4b0d3255bfef95601890afd80709" : c10::sha1(bytes).str();
}

}  // namespace qrobust::util
