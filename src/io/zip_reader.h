#pragma once
// The stored (uncompressed) zip archives torch.save and torch::pickle_save write, read from an
// untrusted file: every offset and size in the directory is checked against the file, and every
// record is checked against the CRC-32 the directory holds for it before it is handed out. The
// file is read record by record, never as a whole, so a huge or sparse file costs nothing until
// a record of it is asked for.
#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace qrobust::io {

class ZipReader {
 public:
  // Reads the central directory. Throws RuntimeFailure naming the file when it is not a zip
  // archive, is truncated, or holds an entry that is compressed, encrypted or out of bounds.
  explicit ZipReader(const std::string& path);

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return file_size_; }
  // Entry names, in directory order.
  const std::vector<std::string>& names() const { return names_; }
  bool has(const std::string& name) const { return entries_.count(name) != 0; }
  // The entry's size in bytes; throws RuntimeFailure when there is no such entry.
  uint64_t size(const std::string& name) const;
  // The entry's bytes, after their CRC-32 matched the directory's (RuntimeFailure otherwise).
  std::string read(const std::string& name);

 private:
  struct Entry {
    uint64_t local_header = 0;  // offset of the local file header
    uint64_t size = 0;
    uint32_t crc32 = 0;
  };
  const Entry& entry(const std::string& name) const;
  std::string read_at(uint64_t offset, uint64_t count, const char* what);
  [[noreturn]] void fail(const std::string& message) const;

  std::string path_;
  std::ifstream file_;
  uint64_t file_size_ = 0;
  std::vector<std::string> names_;
  std::map<std::string, Entry> entries_;
};

}  // namespace qrobust::io
