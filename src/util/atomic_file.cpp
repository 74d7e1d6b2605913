#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/errors.h"

namespace qrobust::util {
namespace fs = std::filesystem;

namespace {
void fsync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) return;  // best effort: some file systems refuse fsync on directories
  ::fsync(fd);
  ::close(fd);
}
}  // namespace

void commit_atomically(const std::string& path, const std::function<void(const std::string&)>& write_to) {
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string temp = (dir / ("." + target.filename().string() + "." + std::to_string(::getpid()) + ".tmp")).string();
  try {
    write_to(temp);
    fsync_path(temp, O_RDONLY);
    std::error_code ec;
    fs::rename(temp, target, ec);
    if (ec) throw RuntimeFailure("cannot write " + path + ": " + ec.message());
  } catch (...) {
    std::error_code ignored;
    fs::remove(temp, ignored);
    throw;
  }
  fsync_path(dir.string(), O_RDONLY | O_DIRECTORY);
}

void write_file_atomically(const std::string& path, const std::string& contents) {
  commit_atomically(path, [&](const std::string& temp) {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.close();
    if (!out) throw RuntimeFailure("cannot write " + path + ": " + std::strerror(errno));
  });
}

std::string read_file(const std::string& path, uint64_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw RuntimeFailure(path + ": cannot open: " + std::strerror(errno));
  const auto size = static_cast<uint64_t>(in.tellg());
  if (size > max_bytes)
    throw RuntimeFailure(path + ": " + std::to_string(size) + " bytes, more than the " + std::to_string(max_bytes) +
                         " such a file can hold");
  std::string contents(static_cast<size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(contents.data(), static_cast<std::streamsize>(contents.size())))
    throw RuntimeFailure(path + ": cannot read: " + std::strerror(errno));
  return contents;
}

}  // namespace qrobust::util
