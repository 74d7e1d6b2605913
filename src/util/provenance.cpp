#include "util/provenance.h"

#include <torch/torch.h>
#include <unistd.h>

#include <ctime>

#include "qrobust/build_info.h"

namespace qrobust::util {

std::string qrobust_version() { return QROBUST_VERSION; }
std::string git_sha() { return QROBUST_GIT_SHA; }
std::string libtorch_version() { return TORCH_VERSION; }

std::string version_line() {
  return "qrobust " + qrobust_version() + " (git " + git_sha() + ", LibTorch " + libtorch_version() + ")";
}

nlohmann::json provenance() {
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return {{"qrobust", qrobust_version()}, {"git_sha", git_sha()}, {"libtorch", libtorch_version()},
          {"host", host}, {"time_utc", stamp}};
}

}  // namespace qrobust::util
