#include "data/cifar10.h"

#include <filesystem>

#include "util/atomic_file.h"
#include "util/errors.h"

namespace qrobust::data {

CIFAR10::CIFAR10(const std::string& root, Mode mode) {
  std::vector<std::string> files;
  if (mode == Mode::kTrain) {
    for (int i = 1; i <= 5; ++i) files.push_back(root + "/data_batch_" + std::to_string(i) + ".bin");
  } else {
    files.push_back(root + "/test_batch.bin");
  }
  std::vector<torch::Tensor> records;
  for (const auto& file : files) {
    if (!std::filesystem::is_regular_file(file))
      throw RuntimeFailure(file + ": CIFAR-10 file not found (expected the cifar-10-batches-bin layout; "
                           "scripts/prepare_data.sh writes it, or set data.root)");
    std::string bytes = util::read_file(file, kMaxRecords * kRecordBytes);
    if (bytes.empty() || bytes.size() % kRecordBytes != 0)
      throw RuntimeFailure(file + ": truncated or not a CIFAR-10 batch: " + std::to_string(bytes.size()) +
                           " bytes is not a whole number of " + std::to_string(kRecordBytes) + "-byte records");
    const auto count = static_cast<int64_t>(bytes.size() / kRecordBytes);
    auto table = torch::from_blob(bytes.data(), {count, kRecordBytes}, torch::kUInt8).clone();
    const auto labels = table.select(1, 0);
    const int64_t max_label = labels.max().item<int64_t>();
    if (max_label > 9) {
      const int64_t record = labels.gt(9).nonzero()[0][0].item<int64_t>();
      throw RuntimeFailure(file + ": record " + std::to_string(record) + " has label " +
                           std::to_string(labels[record].item<int64_t>()) + " (CIFAR-10 labels are 0..9)");
    }
    records.push_back(std::move(table));
  }
  const auto table = torch::cat(records);
  targets_ = table.select(1, 0).to(torch::kInt64);
  images_ = table.narrow(1, 1, kRecordBytes - 1).reshape({-1, 3, 32, 32}).contiguous();
}

torch::data::Example<> CIFAR10::get(size_t index) {
  return {images_[static_cast<int64_t>(index)], targets_[static_cast<int64_t>(index)]};
}

torch::optional<size_t> CIFAR10::size() const { return static_cast<size_t>(targets_.size(0)); }

}  // namespace qrobust::data
