#include "data/batches.h"

namespace qrobust::data {

torch::Tensor random_crop_flip(const torch::Tensor& images, int64_t padding, at::Generator& generator) {
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  const auto index_options = torch::TensorOptions().dtype(torch::kLong);
  auto padded = torch::constant_pad_nd(images, {padding, padding, padding, padding}, 0);
  // Per-image window offsets, gathered first along rows then along columns.
  const auto top = torch::randint(0, 2 * padding + 1, {n, 1}, generator, index_options);
  const auto left = torch::randint(0, 2 * padding + 1, {n, 1}, generator, index_options);
  const auto rows = (top + torch::arange(h, index_options)).view({n, 1, h, 1}).expand({n, c, h, w + 2 * padding});
  const auto cols = (left + torch::arange(w, index_options)).view({n, 1, 1, w}).expand({n, c, h, w});
  auto cropped = padded.gather(2, rows).gather(3, cols);
  const auto flip = torch::rand({n}, generator) < 0.5;
  return torch::where(flip.view({n, 1, 1, 1}), cropped.flip({3}), cropped);
}

EpochBatches::EpochBatches(const LabeledImages& split, const DatasetInfo& info, const BatchOptions& options,
                           uint64_t epoch_seed, torch::Device device)
    : split_(split), options_(options), seed_(epoch_seed), device_(device) {
  const int64_t n = split.size();
  if (options.shuffle) {
    auto generator = at::detail::createCPUGenerator(mix_seed(epoch_seed, 0));
    order_ = torch::randperm(n, generator, torch::kLong);
  }
  num_batches_ = options.drop_last && n >= options.batch_size ? n / options.batch_size
                                                              : (n + options.batch_size - 1) / options.batch_size;
  const auto c = static_cast<int64_t>(info.mean.size());
  mean_ = torch::tensor(info.mean, torch::kFloat).view({1, c, 1, 1}).to(device);
  std_ = torch::tensor(info.std, torch::kFloat).view({1, c, 1, 1}).to(device);
}

int64_t EpochBatches::images_in(int64_t batch) const {
  return std::min(options_.batch_size, split_.size() - batch * options_.batch_size);
}

Batch EpochBatches::get(int64_t batch) const {
  TORCH_CHECK(batch >= 0 && batch < num_batches_, "batch index out of range");
  const int64_t start = batch * options_.batch_size, count = images_in(batch);
  torch::Tensor images, targets;
  if (order_.defined()) {
    const auto index = order_.narrow(0, start, count);
    images = split_.images.index_select(0, index);
    targets = split_.targets.index_select(0, index);
  } else {
    images = split_.images.narrow(0, start, count);
    targets = split_.targets.narrow(0, start, count);
  }
  if (options_.augment) {
    auto generator = at::detail::createCPUGenerator(mix_seed(seed_, static_cast<uint64_t>(batch) + 1));
    images = random_crop_flip(images, options_.crop_padding, generator);
  }
  images = images.to(device_, /*non_blocking=*/true).to(torch::kFloat).div_(255.0).sub_(mean_).div_(std_);
  return {images, targets.to(device_, /*non_blocking=*/true)};
}

}  // namespace qrobust::data
