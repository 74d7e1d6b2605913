#pragma once
// CIFAR-10 in the official binary layout (cifar-10-batches-bin/): data_batch_1..5.bin for
// training, test_batch.bin for test; each record is 1 label byte + 3072 pixel bytes (R, G, B
// planes of 32x32).
#include <torch/torch.h>

#include <string>

namespace qrobust::data {

class CIFAR10 : public torch::data::datasets::Dataset<CIFAR10> {
 public:
  enum class Mode { kTrain, kTest };

  // Reads the whole split from `root`; throws RuntimeFailure naming the file when one is
  // missing, truncated or holds labels outside 0..9.
  CIFAR10(const std::string& root, Mode mode);

  torch::data::Example<> get(size_t index) override;  // uint8 3x32x32 image, int64 label
  torch::optional<size_t> size() const override;

  const torch::Tensor& images() const { return images_; }    // uint8 N x 3 x 32 x 32
  const torch::Tensor& targets() const { return targets_; }  // int64 N

  static constexpr int64_t kRecordBytes = 1 + 3 * 32 * 32;
  // The official batches hold 10,000 records; a file with more than the whole data set is not one.
  static constexpr uint64_t kMaxRecords = 60000;

 private:
  torch::Tensor images_, targets_;
};

}  // namespace qrobust::data
