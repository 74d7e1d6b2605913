#pragma once
// Hand-made pickle opcodes and stored zip archives, for crafting the files an attacker or a
// damaged disk could hand qrobust.
#include <zlib.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace qrobust::testing::pickle {

inline std::string little(uint64_t value, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}
inline std::string integer(int32_t value) { return "J" + little(static_cast<uint32_t>(value), 4); }  // BININT
inline std::string text(const std::string& s) { return "X" + little(s.size(), 4) + s; }              // BINUNICODE

inline std::string int_tuple(const std::vector<int64_t>& values) {
  std::string out = "(";
  for (const auto v : values) out += integer(static_cast<int32_t>(v));
  return out + "t";
}

// torch._utils._rebuild_tensor_v2((storage '0' of `numel` floats), offset, sizes, strides, False, OrderedDict()).
inline std::string tensor(int64_t numel, int64_t offset, const std::vector<int64_t>& sizes,
                          const std::vector<int64_t>& strides, const std::string& key = "0") {
  return "ctorch._utils\n_rebuild_tensor_v2\n((" + text("storage") + "ctorch\nFloatStorage\n" + text(key) + text("cpu") +
         integer(static_cast<int32_t>(numel)) + "tQ" + integer(static_cast<int32_t>(offset)) + int_tuple(sizes) +
         int_tuple(strides) + "\x89" + "ccollections\nOrderedDict\n)Rt" + "R";
}

// {"w": tensor(...)}
inline std::string tensor_dict(int64_t numel, int64_t offset, const std::vector<int64_t>& sizes,
                               const std::vector<int64_t>& strides) {
  return "\x80\x02}(" + text("w") + tensor(numel, offset, sizes, strides) + "u.";
}

// A zip archive of stored entries, as torch.save lays them out.
inline std::string stored_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string local, directory;
  for (const auto& [name, data] : entries) {
    const auto crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(data.data()), data.size()));
    const std::string common = little(20, 2) + little(0, 2) + little(0, 2) + little(0, 4) + little(crc, 4) +
                               little(data.size(), 4) + little(data.size(), 4) + little(name.size(), 2) + little(0, 2);
    directory += little(0x02014b50, 4) + little(20, 2) + common + little(0, 2) + little(0, 2) + little(0, 2) +
                 little(0, 4) + little(local.size(), 4) + name;
    local += little(0x04034b50, 4) + common + name + data;
  }
  return local + directory + little(0x06054b50, 4) + little(0, 4) + little(entries.size(), 2) +
         little(entries.size(), 2) + little(directory.size(), 4) + little(local.size(), 4) + little(0, 2);
}

}  // namespace qrobust::testing::pickle
