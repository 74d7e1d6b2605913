#include "io/zip_reader.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <limits>

#include "util/errors.h"

namespace qrobust::io {
namespace {

constexpr uint32_t kEndOfDirectory = 0x06054b50;
constexpr uint32_t kZip64EndOfDirectory = 0x06064b50;
constexpr uint32_t kZip64Locator = 0x07064b50;
constexpr uint32_t kDirectoryEntry = 0x02014b50;
constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr size_t kEndOfDirectorySize = 22;
constexpr size_t kMaxComment = 0xffff;

// Little-endian fields of a buffer; reading past its end throws.
class Fields {
 public:
  Fields(const std::string& bytes, size_t at) : bytes_(bytes), at_(at) {}
  uint64_t get(size_t n) {
    if (at_ > bytes_.size() || bytes_.size() - at_ < n) throw RuntimeFailure("truncated zip structure");
    uint64_t value = 0;
    for (size_t i = n; i-- > 0;) value = (value << 8) | static_cast<unsigned char>(bytes_[at_ + i]);
    at_ += n;
    return value;
  }
  std::string text(size_t n) {
    if (at_ > bytes_.size() || bytes_.size() - at_ < n) throw RuntimeFailure("truncated zip structure");
    at_ += n;
    return bytes_.substr(at_ - n, n);
  }
  void skip(size_t n) { text(n); }
  size_t at() const { return at_; }

 private:
  const std::string& bytes_;
  size_t at_;
};

uint32_t crc32_of(const std::string& bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  constexpr size_t kChunk = std::numeric_limits<uInt>::max();
  for (size_t at = 0; at < bytes.size(); at += kChunk)
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + at),
                static_cast<uInt>(std::min(kChunk, bytes.size() - at)));
  return static_cast<uint32_t>(crc);
}

}  // namespace

ZipReader::ZipReader(const std::string& path) : path_(path) {
  std::error_code error;
  file_size_ = std::filesystem::file_size(path, error);
  if (error) fail("cannot read (" + error.message() + ")");
  file_.open(path, std::ios::binary);
  if (!file_) fail("cannot open for reading");
  try {
    // The end-of-directory record is the last 22 bytes plus a comment of up to 64 KiB.
    const uint64_t tail_size = std::min<uint64_t>(file_size_, kEndOfDirectorySize + kMaxComment);
    const std::string tail = read_at(file_size_ - tail_size, tail_size, "the end of the archive");
    size_t end = std::string::npos;
    for (size_t at = tail.size() >= kEndOfDirectorySize ? tail.size() - kEndOfDirectorySize + 1 : 0; at-- > 0;) {
      Fields f(tail, at);
      if (f.get(4) != kEndOfDirectory) continue;
      f.skip(16);
      if (at + kEndOfDirectorySize + f.get(2) == tail.size()) {
        end = at;
        break;
      }
    }
    if (end == std::string::npos) fail("not a zip archive (no end-of-directory record)");
    Fields eocd(tail, end + 4);
    const uint64_t disk = eocd.get(2), directory_disk = eocd.get(2);
    eocd.skip(2);
    uint64_t count = eocd.get(2), directory_size = eocd.get(4), directory_offset = eocd.get(4);
    if (disk != 0 || directory_disk != 0) fail("multi-part zip archives are not supported");
    // ZIP64 (PyTorch's writer adds it to every archive): a locator just before the record.
    const uint64_t end_offset = file_size_ - tail_size + end;
    if (end >= 20 && Fields(tail, end - 20).get(4) == kZip64Locator) {
      Fields locator(tail, end - 12);  // after the signature and the disk number
      const uint64_t record = locator.get(8);
      if (record > end_offset || end_offset - record < 56) fail("malformed ZIP64 end-of-directory locator");
      const std::string bytes = read_at(record, 56, "the ZIP64 end-of-directory record");
      Fields z(bytes, 0);
      if (z.get(4) != kZip64EndOfDirectory) fail("malformed ZIP64 end-of-directory record");
      z.skip(20);
      z.skip(8);  // entries on this disk
      count = z.get(8);
      directory_size = z.get(8);
      directory_offset = z.get(8);
    }
    if (directory_offset > end_offset || directory_size > end_offset - directory_offset)
      fail("zip directory lies outside the file");
    // Each directory entry takes at least 46 bytes: a bound on the count before reserving.
    if (count > directory_size / 46) fail("zip directory claims more entries than it can hold");
    const std::string directory = read_at(directory_offset, directory_size, "the zip directory");
    Fields d(directory, 0);
    for (uint64_t i = 0; i < count; ++i) {
      if (d.get(4) != kDirectoryEntry) fail("malformed zip directory entry " + std::to_string(i));
      d.skip(4);
      const uint64_t flags = d.get(2), method = d.get(2);
      d.skip(4);
      Entry entry;
      entry.crc32 = static_cast<uint32_t>(d.get(4));
      uint64_t compressed = d.get(4), size = d.get(4);
      const size_t name_length = d.get(2), extra_length = d.get(2), comment_length = d.get(2);
      d.skip(8);
      uint64_t local = d.get(4);
      const std::string name = d.text(name_length);
      Fields extra(directory, d.at());
      const size_t extra_end = d.at() + extra_length;
      d.skip(extra_length);
      d.skip(comment_length);
      // ZIP64 extra field: the 8-byte values of the fields that are saturated, in this order.
      while (extra.at() + 4 <= extra_end) {
        const uint64_t id = extra.get(2), length = extra.get(2);
        if (extra.at() + length > extra_end) fail("malformed extra field of zip entry " + name);
        if (id == 1) {
          Fields z(directory, extra.at());
          if (size == 0xffffffff) size = z.get(8);
          if (compressed == 0xffffffff) compressed = z.get(8);
          if (local == 0xffffffff) local = z.get(8);
          if (z.at() > extra.at() + length) fail("malformed ZIP64 field of zip entry " + name);
        }
        extra.skip(length);
      }
      if (flags & 1) fail("zip entry " + name + " is encrypted");
      if (method != 0 || compressed != size)
        fail("zip entry " + name + " is compressed (method " + std::to_string(method) +
             "); torch.save archives store their records uncompressed");
      if (local > directory_offset || size > directory_offset - local)
        fail("zip entry " + name + " lies outside the file");
      entry.local_header = local;
      entry.size = size;
      if (!entries_.emplace(name, entry).second) fail("zip entry " + name + " appears twice");
      names_.push_back(name);
    }
  } catch (const RuntimeFailure& e) {
    const std::string message = e.what();
    if (message.rfind(path_, 0) == 0) throw;
    fail(message);
  }
}

uint64_t ZipReader::size(const std::string& name) const { return entry(name).size; }

std::string ZipReader::read(const std::string& name) {
  const Entry& e = entry(name);
  const std::string header = read_at(e.local_header, 30, "a zip entry header");
  Fields h(header, 0);
  if (h.get(4) != kLocalHeader) fail("zip entry " + name + " has no local header");
  h.skip(22);
  const uint64_t name_length = h.get(2), extra_length = h.get(2);
  const uint64_t data = e.local_header + 30 + name_length + extra_length;
  if (data > file_size_ || e.size > file_size_ - data) fail("zip entry " + name + " lies outside the file");
  if (read_at(e.local_header + 30, name_length, "a zip entry name") != name)
    fail("zip entry " + name + ": its local header names another file");
  std::string bytes = read_at(data, e.size, "a zip entry");
  if (crc32_of(bytes) != e.crc32) fail("zip entry " + name + " is damaged (its CRC-32 does not match)");
  return bytes;
}

const ZipReader::Entry& ZipReader::entry(const std::string& name) const {
  const auto found = entries_.find(name);
  if (found == entries_.end()) fail("the archive has no entry " + name);
  return found->second;
}

std::string ZipReader::read_at(uint64_t offset, uint64_t count, const char* what) {
  if (offset > file_size_ || count > file_size_ - offset) fail(std::string("truncated: ") + what + " lies past the end");
  std::string bytes(count, '\0');
  file_.clear();
  file_.seekg(static_cast<std::streamoff>(offset));
  file_.read(bytes.data(), static_cast<std::streamsize>(count));
  if (static_cast<uint64_t>(file_.gcount()) != count) fail(std::string("read failed in ") + what);
  return bytes;
}

void ZipReader::fail(const std::string& message) const { throw RuntimeFailure(path_ + ": " + message); }

}  // namespace qrobust::io
