#pragma once
// MNIST and Fashion-MNIST in the IDX format (LeCun's), plain or gzipped:
// {train,t10k}-images-idx3-ubyte[.gz] and {train,t10k}-labels-idx1-ubyte[.gz].
#include <torch/torch.h>

#include <string>

namespace qrobust::data {

// Reads an IDX image file (magic 2051) into uint8 N x 1 x H x W. Throws RuntimeFailure naming
// the file for a missing file, wrong magic number, or a size that does not match the header.
torch::Tensor read_idx_images(const std::string& path);
// Reads an IDX label file (magic 2049) into int64 N.
torch::Tensor read_idx_labels(const std::string& path);

class IdxDataset : public torch::data::datasets::Dataset<IdxDataset> {
 public:
  enum class Mode { kTrain, kTest };

  // Finds the split's image and label files in `root` (".gz" or not) and reads them.
  IdxDataset(const std::string& root, Mode mode);

  torch::data::Example<> get(size_t index) override;
  torch::optional<size_t> size() const override;

  const torch::Tensor& images() const { return images_; }
  const torch::Tensor& targets() const { return targets_; }

 private:
  torch::Tensor images_, targets_;
};

}  // namespace qrobust::data
