#pragma once
// Turning a split into training or evaluation batches. For in-memory splits, shuffling,
// augmentation and normalization are tensor operations over the whole batch (no per-sample
// loop); JPEG splits decode each batch's files, on worker threads that run a bounded number
// of batches ahead of the consumer. Every random choice comes from a generator seeded by
// (epoch seed, batch index), so an epoch's batches are the same whether it runs straight
// through or is resumed, on any device, and with any number of workers.
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "data/datasets.h"

namespace qrobust::data {

struct Batch {
  torch::Tensor images;   // float, normalized, on the target device
  torch::Tensor targets;  // int64, on the target device (JPEG splits: of the images that could be read)
};

struct BatchOptions {
  int64_t batch_size = 128;
  bool shuffle = false;
  bool drop_last = false;  // training drops a short last batch (batch norm needs > 1 sample)
  bool augment = false;
  int64_t crop_padding = 4;
  // Data parallelism: each global batch holds batch_size * shards images, and this process
  // gets the shard-th batch_size of them.
  int64_t shard = 0, shards = 1;
};

class BatchPrefetcher;

class EpochBatches {
 public:
  EpochBatches(const LabeledImages& split, const DatasetInfo& info, const BatchOptions& options, uint64_t epoch_seed,
               torch::Device device);
  ~EpochBatches();

  int64_t size() const { return num_batches_; }
  int64_t images_in(int64_t batch) const;
  // Any batch, in any order; taken in order 0, 1, ... from a JPEG split, batches come from the
  // prefetching workers.
  Batch get(int64_t batch) const;

 private:
  int64_t first_image(int64_t batch) const;  // position in the epoch order
  Batch make(int64_t batch) const;

  LabeledImages split_;
  BatchOptions options_;
  uint64_t seed_;
  torch::Device device_;
  torch::Tensor order_;
  torch::Tensor mean_, std_;  // 1 x C x 1 x 1 on device
  int64_t num_batches_;
  mutable std::unique_ptr<BatchPrefetcher> prefetcher_;
};

// Zero-pads each image by `padding` pixels and crops a random H x W window, then flips half
// of the images horizontally (uint8 in, uint8 out).
torch::Tensor random_crop_flip(const torch::Tensor& images, int64_t padding, at::Generator& generator);

}  // namespace qrobust::data
