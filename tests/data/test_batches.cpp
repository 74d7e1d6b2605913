#include <catch2/catch.hpp>

#include "data/batches.h"
#include "data/datasets.h"
#include "test_support.h"

using namespace qrobust;

TEST_CASE("random_crop_flip returns, for every image, a window of the padded image, flipped or not") {
  auto [images, labels] = testing::synthetic_images(16, 3, 8, 5);
  auto generator = at::detail::createCPUGenerator(11);
  const auto out = data::random_crop_flip(images, 2, generator);
  REQUIRE(out.sizes() == images.sizes());
  const auto padded = torch::constant_pad_nd(images, {2, 2, 2, 2}, 0);
  int flipped = 0;
  for (int64_t i = 0; i < 16; ++i) {
    bool found = false;
    for (int64_t top = 0; top <= 4 && !found; ++top)
      for (int64_t left = 0; left <= 4 && !found; ++left) {
        const auto window = padded[i].narrow(1, top, 8).narrow(2, left, 8);
        if (torch::equal(window, out[i])) found = true;
        else if (torch::equal(window.flip({2}), out[i])) found = true, ++flipped;
      }
    CHECK(found);
  }
  CHECK(flipped > 0);
  CHECK(flipped < 16);
}

TEST_CASE("epoch batches are deterministic under the seed, cover the split once and normalize") {
  auto [images, labels] = testing::synthetic_images(100, 3, 32, 3);
  const data::LabeledImages split{images, labels, nullptr};
  const auto info = data::dataset_info(config::DataConfig{});
  data::BatchOptions options;
  options.batch_size = 32;
  options.shuffle = true;
  options.drop_last = true;
  options.augment = true;

  data::EpochBatches a(split, info, options, 99, torch::kCPU), b(split, info, options, 99, torch::kCPU),
      c(split, info, options, 100, torch::kCPU);
  REQUIRE(a.size() == 3);  // 100 / 32, short batch dropped
  CHECK(torch::equal(a.get(1).images, b.get(1).images));
  CHECK(torch::equal(a.get(1).targets, b.get(1).targets));
  CHECK_FALSE(torch::equal(a.get(1).targets, c.get(1).targets));

  options.drop_last = false;
  options.augment = false;
  data::EpochBatches all(split, info, options, 5, torch::kCPU);
  REQUIRE(all.size() == 4);
  std::vector<torch::Tensor> seen;
  for (int64_t i = 0; i < all.size(); ++i) seen.push_back(all.get(i).targets);
  CHECK(torch::equal(std::get<0>(torch::cat(seen).sort()), std::get<0>(labels.sort())));

  options.shuffle = false;
  data::EpochBatches ordered(split, info, options, 5, torch::kCPU);
  const auto first = ordered.get(0).images;
  const auto mean = torch::tensor(info.mean).view({1, 3, 1, 1}).to(torch::kFloat);
  const auto std = torch::tensor(info.std).view({1, 3, 1, 1}).to(torch::kFloat);
  const auto expected = (images.narrow(0, 0, 32).to(torch::kFloat) / 255.0 - mean) / std;
  CHECK(torch::allclose(first, expected, 1e-5, 1e-5));
}

TEST_CASE("the validation split is a seeded subset disjoint from training") {
  testing::TempDir dir;
  testing::write_cifar10(dir.path(), 20);
  config::DataConfig config;
  config.root = dir.path();
  config.val_size = 30;
  const auto a = data::load_splits(config, 1), b = data::load_splits(config, 1), c = data::load_splits(config, 2);
  CHECK(a.val.size() == 30);
  CHECK(a.train.size() == 70);
  CHECK(torch::equal(a.val.images, b.val.images));
  CHECK_FALSE(torch::equal(a.val.images, c.val.images));
  // Disjoint: no validation image equals a training image (the synthetic images are all distinct).
  const auto val = a.val.images.flatten(1).to(torch::kInt), train = a.train.images.flatten(1).to(torch::kInt);
  CHECK(torch::cdist(val.to(torch::kFloat), train.to(torch::kFloat)).min().item<float>() > 0);
  config.train_limit = 10;
  CHECK(data::load_splits(config, 1).train.size() == 10);
  config.val_size = 100;
  CHECK_THROWS_WITH(data::load_splits(config, 1), Catch::Contains("data.val_size"));
}
