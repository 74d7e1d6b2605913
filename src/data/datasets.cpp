#include "data/datasets.h"

#include <thread>

#include "data/cifar10.h"
#include "data/idx.h"

namespace qrobust::data {

uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9E3779B97F4A7C15ULL + b + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

LabeledImages LabeledImages::select(const torch::Tensor& index) const {
  return {images.defined() ? images.index_select(0, index) : torch::Tensor(), targets.index_select(0, index),
          files ? files->select(index) : nullptr};
}

DatasetInfo dataset_info(const config::DataConfig& config) {
  const std::string name = util::name_of(config.dataset, config::kDatasetNames);
  switch (config.dataset) {
    case config::Dataset::kImageFolder:
      return {name,
              3,
              config.image_size,
              config.image_size,
              static_cast<int64_t>(image_folder_classes(config.root, "train").size()),
              {0.485, 0.456, 0.406},
              {0.229, 0.224, 0.225}};
    case config::Dataset::kCifar10: return {name, 3, 32, 32, 10, {0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}};
    case config::Dataset::kFashionMnist: return {name, 1, 28, 28, 10, {0.2860}, {0.3530}};
    case config::Dataset::kMnist: return {name, 1, 28, 28, 10, {0.1307}, {0.3081}};
  }
  throw std::logic_error("dataset_info: a data set without its description");  // unreachable: the switch is exhaustive
}

DataSplits load_splits(const config::DataConfig& config, int64_t seed) {
  DataSplits splits;
  splits.info = dataset_info(config);
  LabeledImages train;
  if (config.dataset == config::Dataset::kImageFolder) {
    const auto options = ImageFolderOptions()
                             .image_size(config.image_size)
                             .resize(config.resize)
                             .strict(config.strict)
                             .workers(config.workers > 0 ? config.workers
                                                         : std::max<int64_t>(1, std::thread::hardware_concurrency()));
    ImageFolder train_set(config.root, "train", options), test_set(config.root, config.test_dir, options);
    if (test_set.classes() != train_set.classes())
      throw RuntimeFailure(config.root + ": the class folders of " + config.test_dir + "/ differ from those of train/");
    train = {torch::Tensor(), train_set.targets(), train_set.files()};
    splits.test = {torch::Tensor(), test_set.targets(), test_set.files()};
  } else if (config.dataset == config::Dataset::kCifar10) {
    CIFAR10 train_set(config.root, CIFAR10::Mode::kTrain), test_set(config.root, CIFAR10::Mode::kTest);
    train = {train_set.images(), train_set.targets(), nullptr};
    splits.test = {test_set.images(), test_set.targets(), nullptr};
  } else {
    IdxDataset train_set(config.root, IdxDataset::Mode::kTrain), test_set(config.root, IdxDataset::Mode::kTest);
    train = {train_set.images(), train_set.targets(), nullptr};
    splits.test = {test_set.images(), test_set.targets(), nullptr};
  }
  const auto& info = splits.info;
  for (const auto* split : {&train, &splits.test})
    if (split->images.defined() && (split->images.size(1) != info.channels || split->images.size(2) != info.height ||
                                    split->images.size(3) != info.width))
      throw RuntimeFailure(config.root + ": images are " + std::to_string(split->images.size(1)) + "x" +
                           std::to_string(split->images.size(2)) + "x" + std::to_string(split->images.size(3)) +
                           ", expected " + std::to_string(info.channels) + "x" + std::to_string(info.height) + "x" +
                           std::to_string(info.width) + " for " + info.name);

  // A data set with no images is bad data, not a bad split size.
  if (train.size() == 0) throw RuntimeFailure(config.root + ": the training split has no images");
  if (splits.test.size() == 0) throw RuntimeFailure(config.root + ": the test split has no images");
  if (config.val_size >= train.size())
    throw UsageError("data.val_size: " + std::to_string(config.val_size) + " leaves no training images (the split has " +
                     std::to_string(train.size()) + ")");
  torch::Tensor keep = torch::arange(train.size());
  if (config.val_size > 0) {
    auto generator = at::detail::createCPUGenerator(mix_seed(static_cast<uint64_t>(seed), 0x7661));
    const auto order = torch::randperm(train.size(), generator, torch::kLong);
    const auto val_index = std::get<0>(order.narrow(0, 0, config.val_size).sort());
    keep = std::get<0>(order.narrow(0, config.val_size, train.size() - config.val_size).sort());
    splits.val = train.select(val_index);
  }
  if (config.train_limit > 0 && config.train_limit < keep.size(0)) {
    if (train.files) {
      // An ImageFolder lists its files class by class: keep a seeded random subset instead.
      auto generator = at::detail::createCPUGenerator(mix_seed(static_cast<uint64_t>(seed), 0x11A1));
      const auto picks = torch::randperm(keep.size(0), generator, torch::kLong).narrow(0, 0, config.train_limit);
      keep = keep.index_select(0, std::get<0>(picks.sort()));
    } else {
      keep = keep.narrow(0, 0, config.train_limit);
    }
  }
  splits.train = keep.size(0) == train.size() ? train : train.select(keep);
  return splits;
}

}  // namespace qrobust::data
