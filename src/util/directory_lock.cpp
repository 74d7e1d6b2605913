#include "util/directory_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>

#include "util/errors.h"

namespace qrobust::util {
namespace fs = std::filesystem;

DirectoryLock::DirectoryLock(const std::string& dir, const std::string& command) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw RuntimeFailure(dir + ": cannot create directory: " + ec.message());
  const std::string path = (fs::path(dir) / ".qrobust.lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw RuntimeFailure(path + ": cannot open the lock file: " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    if (error == EWOULDBLOCK)
      throw RuntimeFailure(dir + ": another qrobust process is writing here; " + command +
                           " refuses to share a directory (wait for it, or choose another)");
    throw RuntimeFailure(path + ": cannot lock: " + std::strerror(error));
  }
  // Only a writer holding the lock may remove temporary files: no other writer can own them.
  static const std::regex temporary(R"(\..+\.[0-9]+\.tmp)");
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.is_regular_file() && std::regex_match(entry.path().filename().string(), temporary))
      fs::remove(entry.path(), ec);
}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace qrobust::util
