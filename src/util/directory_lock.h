#pragma once
// One writer per output directory: an advisory lock (flock) on DIR/.qrobust.lock, held while
// a command writes there. A second writer is refused with a one-line error; a killed holder
// releases it with its process. Holding it, the temporary files that killed writers left
// behind (util/atomic_file.h names them .NAME.PID.tmp) are removed.
#include <string>

namespace qrobust::util {

class DirectoryLock {
 public:
  // Creates `dir` if needed and takes its lock; RuntimeFailure naming the directory and
  // `command` when another process holds it.
  DirectoryLock(const std::string& dir, const std::string& command);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace qrobust::util
