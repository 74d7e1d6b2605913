#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>

#include "util/errors.h"

namespace qrobust::data {
namespace {

// IDX files of any data set this reads are far smaller; a header promising more is not one.
constexpr uint64_t kMaxPayloadBytes = 2ull << 30;

// An IDX file (gzipped or not: zlib reads plain files unchanged) whose header has magic `magic`
// and `dims` dimensions: returns the dimensions and the payload, after checking that the file
// holds exactly the bytes the header promises. Reads no more than that, so a gzip bomb stops
// at the header's bound.
std::pair<std::vector<int64_t>, std::vector<uint8_t>> read_idx(const std::string& path, uint32_t magic, size_t dims,
                                                               const char* kind) {
  if (!std::filesystem::is_regular_file(path)) throw RuntimeFailure(path + ": file not found");
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw RuntimeFailure(path + ": cannot open");
  // Reads up to `count` bytes; fewer only at the end of the data.
  auto read = [&](uint8_t* into, uint64_t count) {
    uint64_t done = 0;
    while (done < count) {
      const auto want = static_cast<unsigned>(std::min<uint64_t>(count - done, 1u << 30));
      const int n = gzread(file, into + done, want);
      if (n < 0) {
        int code = 0;
        const std::string message = gzerror(file, &code);
        gzclose(file);
        throw RuntimeFailure(path + ": corrupt or truncated gzip data (" + message + ")");
      }
      if (n == 0) break;
      done += static_cast<uint64_t>(n);
    }
    return done;
  };
  std::vector<uint8_t> header(4 * (1 + dims));
  const uint64_t header_read = read(header.data(), header.size());
  auto fail = [&](const std::string& message) {
    gzclose(file);
    throw RuntimeFailure(path + ": " + message);
  };
  if (header_read < header.size())
    fail("truncated: " + std::to_string(header_read) + " bytes, shorter than the IDX header");
  auto big_endian = [&](size_t offset) {
    return (uint32_t(header[offset]) << 24) | (uint32_t(header[offset + 1]) << 16) |
           (uint32_t(header[offset + 2]) << 8) | uint32_t(header[offset + 3]);
  };
  if (big_endian(0) != magic)
    fail(std::string("not an IDX ") + kind + " file: magic number " + std::to_string(big_endian(0)) + ", expected " +
         std::to_string(magic));
  // Bounded with zero dimensions counted as 1: a tensor of 0 images of 3e9 x 3e9 pixels holds no
  // bytes but its strides overflow (it crashed LibTorch, found by fuzz/fuzz_idx.cpp).
  std::vector<int64_t> shape;
  uint64_t extent = 1;
  for (size_t d = 0; d < dims; ++d) {
    shape.push_back(big_endian(4 * (1 + d)));
    const auto size = std::max<uint64_t>(shape.back(), 1);
    if (__builtin_mul_overflow(extent, size, &extent) || extent > kMaxPayloadBytes)
      fail("header dimensions promise more than " + std::to_string(kMaxPayloadBytes) + " bytes of " + kind +
           " (not an IDX file of a data set qrobust reads)");
  }
  uint64_t payload = 1;
  for (const int64_t size : shape) payload *= static_cast<uint64_t>(size);
  // Grown as data arrives, so a short file costs only what it holds, whatever the header says.
  std::vector<uint8_t> bytes, chunk(1 << 20);
  uint64_t n = 0;
  while (bytes.size() <= payload && (n = read(chunk.data(), chunk.size())) > 0)
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
  gzclose(file);
  if (bytes.size() != payload)
    throw RuntimeFailure(path + ": " + (bytes.size() < payload ? "truncated" : "has trailing data") +
                         ": header promises " + std::to_string(payload) + " bytes of " + kind + ", file holds " +
                         (bytes.size() > payload ? "more" : std::to_string(bytes.size())));
  return {shape, bytes};
}

std::string find_file(const std::string& root, const std::string& name) {
  for (const auto& candidate : {root + "/" + name + ".gz", root + "/" + name})
    if (std::filesystem::is_regular_file(candidate)) return candidate;
  throw RuntimeFailure(root + "/" + name + "[.gz]: IDX file not found (set data.root)");
}

}  // namespace

torch::Tensor read_idx_images(const std::string& path) {
  auto [shape, bytes] = read_idx(path, 2051, 3, "images");
  return torch::from_blob(bytes.data(), {shape[0], 1, shape[1], shape[2]}, torch::kUInt8).clone();
}

torch::Tensor read_idx_labels(const std::string& path) {
  auto [shape, bytes] = read_idx(path, 2049, 1, "labels");
  return torch::from_blob(bytes.data(), {shape[0]}, torch::kUInt8).to(torch::kInt64);
}

IdxDataset::IdxDataset(const std::string& root, Mode mode) {
  const std::string prefix = mode == Mode::kTrain ? "train" : "t10k";
  const std::string image_file = find_file(root, prefix + "-images-idx3-ubyte");
  const std::string label_file = find_file(root, prefix + "-labels-idx1-ubyte");
  images_ = read_idx_images(image_file);
  targets_ = read_idx_labels(label_file);
  if (images_.size(0) != targets_.size(0))
    throw RuntimeFailure(label_file + ": holds " + std::to_string(targets_.size(0)) + " labels but " + image_file +
                         " holds " + std::to_string(images_.size(0)) + " images");
  if (targets_.numel() > 0 && targets_.max().item<int64_t>() > 9)
    throw RuntimeFailure(label_file + ": labels outside 0..9");
}

torch::data::Example<> IdxDataset::get(size_t index) {
  return {images_[static_cast<int64_t>(index)], targets_[static_cast<int64_t>(index)]};
}

torch::optional<size_t> IdxDataset::size() const { return static_cast<size_t>(targets_.size(0)); }

}  // namespace qrobust::data
