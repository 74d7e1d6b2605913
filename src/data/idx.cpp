#include "data/idx.h"

#include <zlib.h>

#include <filesystem>

#include "util/errors.h"

namespace qrobust::data {
namespace {

// The whole file, decompressed if it is gzipped (zlib reads plain files unchanged).
std::vector<uint8_t> read_maybe_gzipped(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw RuntimeFailure(path + ": file not found");
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw RuntimeFailure(path + ": cannot open");
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(1 << 20);
  while (true) {
    const int n = gzread(file, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) {
      int code = 0;
      const std::string message = gzerror(file, &code);
      gzclose(file);
      throw RuntimeFailure(path + ": corrupt or truncated gzip data (" + message + ")");
    }
    if (n == 0) break;
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
  }
  gzclose(file);
  return bytes;
}

uint32_t big_endian(const std::vector<uint8_t>& bytes, size_t offset) {
  return (uint32_t(bytes[offset]) << 24) | (uint32_t(bytes[offset + 1]) << 16) | (uint32_t(bytes[offset + 2]) << 8) |
         uint32_t(bytes[offset + 3]);
}

// Checks the magic number and the payload size; returns the header's dimensions.
std::vector<int64_t> read_header(const std::vector<uint8_t>& bytes, const std::string& path, uint32_t magic,
                                 size_t dims, const char* kind) {
  const size_t header = 4 * (1 + dims);
  if (bytes.size() < header)
    throw RuntimeFailure(path + ": truncated: " + std::to_string(bytes.size()) + " bytes, shorter than the IDX header");
  if (big_endian(bytes, 0) != magic)
    throw RuntimeFailure(path + ": not an IDX " + kind + " file: magic number " + std::to_string(big_endian(bytes, 0)) +
                         ", expected " + std::to_string(magic));
  std::vector<int64_t> shape;
  size_t payload = 1;
  for (size_t d = 0; d < dims; ++d) {
    shape.push_back(big_endian(bytes, 4 * (1 + d)));
    payload *= static_cast<size_t>(shape.back());
  }
  if (bytes.size() - header != payload)
    throw RuntimeFailure(path + ": " + (bytes.size() - header < payload ? "truncated" : "has trailing data") +
                         ": header promises " + std::to_string(payload) + " bytes of " + kind + ", file holds " +
                         std::to_string(bytes.size() - header));
  return shape;
}

std::string find_file(const std::string& root, const std::string& name) {
  for (const auto& candidate : {root + "/" + name + ".gz", root + "/" + name})
    if (std::filesystem::is_regular_file(candidate)) return candidate;
  throw RuntimeFailure(root + "/" + name + "[.gz]: IDX file not found (set data.root)");
}

}  // namespace

torch::Tensor read_idx_images(const std::string& path) {
  const auto bytes = read_maybe_gzipped(path);
  const auto shape = read_header(bytes, path, 2051, 3, "images");
  return torch::from_blob(const_cast<uint8_t*>(bytes.data()) + 16, {shape[0], 1, shape[1], shape[2]}, torch::kUInt8)
      .clone();
}

torch::Tensor read_idx_labels(const std::string& path) {
  const auto bytes = read_maybe_gzipped(path);
  const auto shape = read_header(bytes, path, 2049, 1, "labels");
  return torch::from_blob(const_cast<uint8_t*>(bytes.data()) + 8, {shape[0]}, torch::kUInt8).to(torch::kInt64);
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
