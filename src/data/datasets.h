#pragma once
// The image data sets qrobust trains on, held whole in memory as uint8 (N x C x H x W) with
// int64 labels, and the splits a run uses.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "config/config.h"

namespace qrobust::data {

struct LabeledImages {
  torch::Tensor images;   // uint8, N x C x H x W
  torch::Tensor targets;  // int64, N
  int64_t size() const { return targets.defined() ? targets.size(0) : 0; }
};

struct DatasetInfo {
  std::string name;
  int64_t channels = 0, height = 0, width = 0, num_classes = 0;
  std::vector<double> mean, std;  // per channel, of pixel values scaled to [0, 1]
};

struct DataSplits {
  DatasetInfo info;
  LabeledImages train;
  LabeledImages val;  // empty unless data.val_size > 0
  LabeledImages test;
};

// Loads the configured data set. The validation split is a seeded random subset of the
// training split; train_limit then keeps the first images of what remains.
DataSplits load_splits(const config::DataConfig& config, int64_t seed);

// Static facts about a data set (shape, classes, normalization) without reading it.
DatasetInfo dataset_info(const std::string& dataset);

// A 64-bit seed derived from two others (splitmix64), for per-epoch and per-batch streams.
uint64_t mix_seed(uint64_t a, uint64_t b);

}  // namespace qrobust::data
