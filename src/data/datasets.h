#pragma once
// The image data sets qrobust trains on and the splits a run uses. Small data sets are held
// whole in memory as uint8 (N x C x H x W); ImageFolder data sets as a list of JPEG files that
// batches decode on demand.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "data/image_folder.h"

namespace qrobust::data {

struct LabeledImages {
  torch::Tensor images;                     // uint8, N x C x H x W (undefined when `files` holds them)
  torch::Tensor targets;                    // int64, N
  std::shared_ptr<const JpegFiles> files;  // ImageFolder data sets: the images, decoded per batch

  int64_t size() const { return targets.defined() ? targets.size(0) : 0; }
  // The images and labels at `index` (int64), in that order.
  LabeledImages select(const torch::Tensor& index) const;
};

struct DatasetInfo {
  std::string name;
  int64_t channels = 0, height = 0, width = 0, num_classes = 0;
  std::vector<double> mean, std;  // per channel, of pixel values scaled to [0, 1]

  models::InputSpec input() const { return {channels, height, width, num_classes}; }
};

enum class Split { kTrain, kVal, kTest };
inline constexpr util::Names<Split, 3> kSplitNames{{{Split::kTrain, "train"}, {Split::kVal, "val"}, {Split::kTest, "test"}}};
// The splits a sweep or sensitivity analysis evaluates: val (held-out training images, for
// choosing hyperparameters) and test.
inline constexpr util::Names<Split, 2> kEvaluationSplitNames{{{Split::kVal, "val"}, {Split::kTest, "test"}}};
inline std::string split_name(Split split) { return util::name_of(split, kSplitNames); }

struct DataSplits {
  DatasetInfo info;
  LabeledImages train;
  LabeledImages val;  // empty unless data.val_size > 0
  LabeledImages test;

  const LabeledImages& operator[](Split split) const {
    return split == Split::kTrain ? train : split == Split::kVal ? val : test;
  }
};

// Loads the configured data set. The validation split is a seeded random subset of the
// training split; train_limit then keeps the first images of what remains (a seeded random subset
// of an ImageFolder, whose files are grouped by class).
DataSplits load_splits(const config::DataConfig& config, int64_t seed);

// Facts about the configured data set (shape, classes, normalization) without reading its
// images (an ImageFolder's classes are its training folder's sub-folders).
DatasetInfo dataset_info(const config::DataConfig& config);

// A 64-bit seed derived from two others (splitmix64), for per-epoch and per-batch streams.
uint64_t mix_seed(uint64_t a, uint64_t b);

}  // namespace qrobust::data
