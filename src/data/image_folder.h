#pragma once
// ImageNet-style data sets: <root>/<split>/<class>/<image>, classes in sorted folder-name order
// (as torchvision's ImageFolder). Only the file list is held in memory; images are decoded
// with libjpeg-turbo when a batch needs them, so memory stays bounded whatever the data set
// size. Transforms follow torchvision's ImageNet recipe: training takes
// RandomResizedCrop(S, scale 0.08-1, ratio 3/4-4/3) and a horizontal flip; evaluation resizes
// the shorter side to `resize` and takes the center S x S crop.
#include <torch/torch.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "data/jpeg.h"

namespace qrobust::data {

struct ImageFolderOptions {
  TORCH_ARG(int64_t, image_size) = 224;  // S: the square network input
  TORCH_ARG(int64_t, resize) = 256;      // evaluation: shorter side before the center crop (0: none)
  TORCH_ARG(bool, strict) = false;       // an unreadable file is an error instead of being skipped
  TORCH_ARG(int64_t, workers) = 1;       // threads decoding batches ahead of their consumer
};

// The images of one split as files, decoded on demand.
class JpegFiles {
 public:
  JpegFiles(std::vector<std::string> paths, ImageFolderOptions options);

  int64_t size() const { return static_cast<int64_t>(paths_.size()); }
  const std::string& path(int64_t i) const { return paths_.at(static_cast<size_t>(i)); }
  const ImageFolderOptions& options() const { return options_; }
  // The files at `index` (int64), sharing this one's skip count.
  std::shared_ptr<const JpegFiles> select(const torch::Tensor& index) const;

  // Image i as uint8 3 x S x S: the training transform drawn from `random` when given, else the
  // evaluation transform. Throws RuntimeFailure naming the file when it cannot be read.
  torch::Tensor load(int64_t i, std::mt19937_64* random) const;
  // The same into `out` (contiguous uint8 3 x S x S).
  void load_into(int64_t i, std::mt19937_64* random, torch::Tensor& out) const;

  // The images at `index` as a uint8 batch; image k's random choices come from (seed, k).
  // Unreadable files are left out with a warning (their count is skipped()), or with `strict`
  // are an error. `kept` receives the positions in `index` that were read.
  torch::Tensor load_batch(const torch::Tensor& index, bool augment, uint64_t seed, std::vector<int64_t>& kept) const;

  // Distinct unreadable files met so far.
  int64_t skipped() const;

 private:
  struct SkipLog;
  std::vector<std::string> paths_;
  ImageFolderOptions options_;
  std::shared_ptr<SkipLog> skip_log_;
};

class ImageFolder : public torch::data::datasets::Dataset<ImageFolder> {
 public:
  // Lists <root>/<split>/<class>/* (image extensions, as torchvision does); throws
  // RuntimeFailure naming the folder when it is missing or holds no images.
  ImageFolder(const std::string& root, const std::string& split, ImageFolderOptions options);

  torch::data::Example<> get(size_t index) override;  // evaluation transform, uint8 3 x S x S
  torch::optional<size_t> size() const override;

  const std::vector<std::string>& classes() const { return classes_; }
  const std::shared_ptr<const JpegFiles>& files() const { return files_; }
  const torch::Tensor& targets() const { return targets_; }  // int64

 private:
  std::vector<std::string> classes_;
  std::shared_ptr<const JpegFiles> files_;
  torch::Tensor targets_;
};

// The sorted class folders of <root>/<split>.
std::vector<std::string> image_folder_classes(const std::string& root, const std::string& split);

}  // namespace qrobust::data
