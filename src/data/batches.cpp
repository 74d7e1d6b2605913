#include "data/batches.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "util/errors.h"

namespace qrobust::data {

// Makes batches next, next + 1, ... on worker threads, at most `depth` beyond the one the
// consumer waits for, so memory holds a bounded number of batches whatever the split's size.
class BatchPrefetcher {
 public:
  BatchPrefetcher(std::function<Batch(int64_t)> make, int64_t count, int64_t workers, int64_t depth)
      : make_(std::move(make)), count_(count), depth_(depth) {
    for (int64_t i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
  }

  ~BatchPrefetcher() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    for (auto& thread : threads_) thread.join();
  }

  // True when `batch` is the one the workers are making next for the consumer.
  bool serves(int64_t batch) {
    std::lock_guard<std::mutex> lock(mutex_);
    return batch == wanted_;
  }

  Batch take(int64_t batch) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return ready_.count(batch) > 0 || failures_.count(batch) > 0; });
    if (failures_.count(batch)) std::rethrow_exception(failures_.at(batch));
    Batch result = std::move(ready_.at(batch));
    ready_.erase(batch);
    wanted_ = batch + 1;
    lock.unlock();
    changed_.notify_all();
    return result;
  }

 private:
  void work() {
    for (;;) {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || (next_ < count_ && next_ < wanted_ + depth_); });
      if (stopping_) return;
      const int64_t batch = next_++;
      lock.unlock();
      try {
        Batch made = make_(batch);
        lock.lock();
        ready_.emplace(batch, std::move(made));
      } catch (...) {
        lock.lock();
        failures_.emplace(batch, std::current_exception());
      }
      lock.unlock();
      changed_.notify_all();
    }
  }

  std::function<Batch(int64_t)> make_;
  const int64_t count_, depth_;
  std::mutex mutex_;
  std::condition_variable changed_;
  int64_t next_ = 0, wanted_ = 0;
  bool stopping_ = false;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, std::exception_ptr> failures_;
  std::vector<std::thread> threads_;
};

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
  const int64_t global_batch = options.batch_size * options.shards;
  num_batches_ = options.drop_last && n >= global_batch ? n / global_batch : (n + global_batch - 1) / global_batch;
  const auto c = static_cast<int64_t>(info.mean.size());
  mean_ = torch::tensor(info.mean, torch::kFloat).view({1, c, 1, 1}).to(device);
  std_ = torch::tensor(info.std, torch::kFloat).view({1, c, 1, 1}).to(device);
}

EpochBatches::~EpochBatches() = default;

int64_t EpochBatches::first_image(int64_t batch) const {
  return (batch * options_.shards + options_.shard) * options_.batch_size;
}

int64_t EpochBatches::images_in(int64_t batch) const {
  return std::clamp<int64_t>(split_.size() - first_image(batch), 0, options_.batch_size);
}

Batch EpochBatches::get(int64_t batch) const {
  TORCH_CHECK(batch >= 0 && batch < num_batches_, "batch index out of range");
  if (split_.files && split_.files->options().workers() > 0) {
    const int64_t workers = split_.files->options().workers();
    if (!prefetcher_)
      prefetcher_ = std::make_unique<BatchPrefetcher>([this](int64_t b) { return make(b); }, num_batches_, workers,
                                                      2 * workers);
    if (prefetcher_->serves(batch)) return prefetcher_->take(batch);
  }
  return make(batch);
}

Batch EpochBatches::make(int64_t batch) const {
  const int64_t start = first_image(batch), count = images_in(batch);
  const auto index = order_.defined() ? order_.narrow(0, start, count) : torch::arange(start, start + count);
  // In epoch order the batch is a contiguous slice: a view, no copy.
  auto pick = [&](const torch::Tensor& all) {
    return order_.defined() ? all.index_select(0, index) : all.narrow(0, start, count);
  };
  uint64_t batch_seed = mix_seed(seed_, static_cast<uint64_t>(batch) + 1);
  if (options_.shard > 0) batch_seed = mix_seed(batch_seed, static_cast<uint64_t>(options_.shard));
  torch::Tensor images, targets;
  if (split_.files) {
    std::vector<int64_t> kept;
    images = split_.files->load_batch(index, options_.augment, batch_seed, kept);
    if (options_.drop_last && kept.size() < 2)
      throw RuntimeFailure("training batch " + std::to_string(batch + 1) + " has fewer than 2 readable images");
    targets = pick(split_.targets).index_select(0, torch::tensor(kept, torch::kLong));
  } else {
    images = pick(split_.images);
    targets = pick(split_.targets);
    if (options_.augment) {
      auto generator = at::detail::createCPUGenerator(batch_seed);
      images = random_crop_flip(images, options_.crop_padding, generator);
    }
  }
  images = images.to(device_, /*non_blocking=*/true).to(torch::kFloat).div_(255.0).sub_(mean_).div_(std_);
  return {images, targets.to(device_, /*non_blocking=*/true)};
}

}  // namespace qrobust::data
