#include "util/runtime.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <thread>

#include "util/errors.h"

namespace qrobust::util {

int configure_threads(int64_t requested) {
  int threads = static_cast<int>(requested);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  return at::get_num_threads();
}

void configure_allocator() {
#ifdef __GLIBC__
  // Blocks up to 32 MB (glibc's largest allowed threshold) come from the heap, not from mmap,
  // and the heap is never trimmed, so freed memory stays mapped for the next step.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
#endif
}

torch::Device resolve_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  static const std::regex pattern("cpu|cuda(:[0-9]+)?");
  if (!std::regex_match(name, pattern))
    throw UsageError("device: expected auto, cpu, cuda or cuda:N, got \"" + name + "\"");
  torch::Device device(name);
  if (device.is_cuda()) {
    if (!torch::cuda::is_available())
      throw UsageError("device: \"" + name + "\" requested but this build of LibTorch has no usable CUDA device");
    const auto count = static_cast<int64_t>(torch::cuda::device_count());
    if (device.has_index() && device.index() >= count)
      throw UsageError("device: \"" + name + "\" requested but only " + std::to_string(count) + " CUDA device(s) exist");
  }
  return device;
}

std::string loaded_blas_library() {
  // The dynamic loader resolves libblas.so.3 through Debian's alternatives; the mapped file's
  // real path tells which implementation won.
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const std::string file = std::filesystem::path(path).filename().string();
    if (file.rfind("libblas", 0) == 0 || file.rfind("libopenblas", 0) == 0 || file.rfind("libmkl", 0) == 0) {
      std::error_code ec;
      const auto real = std::filesystem::canonical(path, ec);
      return ec ? path : real.string();
    }
  }
  return "";
}

void warn_if_reference_blas() {
  const std::string blas = loaded_blas_library();
  if (blas.find("/blas/libblas") != std::string::npos)
    spdlog::warn("using the reference BLAS ({}): training is 2-3x slower than with OpenBLAS; "
                 "install libopenblas0-openmp (scripts/setup.sh does)", blas);
}

}  // namespace qrobust::util
