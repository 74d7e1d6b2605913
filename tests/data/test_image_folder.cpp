#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <thread>

#include "data/batches.h"
#include "data/cifar10.h"
#include "data/datasets.h"
#include "data/image_folder.h"
#include "data/jpeg.h"
#include "test_support.h"
#include "util/errors.h"

using namespace qrobust;
namespace fs = std::filesystem;

namespace {

// A smooth photo-like uint8 H x W x 3 image (JPEG keeps it close to the original).
torch::Tensor photo(int64_t height, int64_t width, double phase) {
  const auto y = torch::arange(height, torch::kFloat).view({height, 1, 1});
  const auto x = torch::arange(width, torch::kFloat).view({1, width, 1});
  const auto channel = torch::arange(3, torch::kFloat).view({1, 1, 3});
  const auto value = 128 + 90 * torch::sin(x / 37.0 + channel + phase) * torch::cos(y / 29.0 - channel);
  return value.round().clamp(0, 255).to(torch::kUInt8);
}

// <root>/<split>/<class>/<k>.jpg for each class, `per_class` images of height x width.
void write_folder(const std::string& root, const std::string& split, const std::vector<std::string>& classes,
                  int per_class, int64_t height, int64_t width) {
  for (size_t c = 0; c < classes.size(); ++c) {
    fs::create_directories(root + "/" + split + "/" + classes[c]);
    for (int k = 0; k < per_class; ++k)
      testing::write_bytes(root + "/" + split + "/" + classes[c] + "/" + std::to_string(k) + ".jpg",
                           data::encode_jpeg(photo(height, width, static_cast<double>(c * 10 + k)), 95));
  }
}

double mean_abs_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat) - b.to(torch::kFloat)).abs().mean().item<double>();
}

}  // namespace

TEST_CASE("The DCT scale is the smallest one that still covers the requested size") {
  // 375 * 3/4 = 281 covers 256; 375 * 5/8 = 234 does not.
  const auto scale = data::covering_scale(500, 375, 341, 256);
  CHECK(scale.factor() == Approx(0.75));
  CHECK(data::covering_scale(1000, 1000, 224, 224).factor() == Approx(0.25));
  CHECK(data::covering_scale(100, 120, 224, 224).factor() == Approx(1.0));  // too small: full size
}

TEST_CASE("Decoding at a DCT scale approximates decoding in full and resizing") {
  const auto original = photo(375, 500, 0.3);
  const std::string bytes = data::encode_jpeg(original, 95);
  CHECK(data::jpeg_size(bytes).width == 500);
  CHECK(data::jpeg_size(bytes).height == 375);
  const auto full = data::decode_jpeg(bytes, {1, 1});
  REQUIRE(full.sizes() == torch::IntArrayRef({375, 500, 3}));
  CHECK(mean_abs_difference(full, original) < 2.0);
  const auto half = data::decode_jpeg(bytes, {1, 2});
  REQUIRE(half.sizes() == torch::IntArrayRef({188, 250, 3}));
  const auto reference = torch::nn::functional::interpolate(
      full.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat),
      torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{188, 250}).mode(torch::kArea));
  CHECK(mean_abs_difference(half.permute({2, 0, 1}).unsqueeze(0), reference) < 2.0);
}

TEST_CASE("Decoding a region gives exactly that part of the whole decode", "[corpus]") {
  const std::string bytes = data::encode_jpeg(photo(301, 437, 0.7), 92);
  testing::save_corpus_sample("jpeg", data::encode_jpeg(photo(24, 40, 0.3), 75));
  for (const data::JpegScale scale : {data::JpegScale{1, 1}, data::JpegScale{5, 8}, data::JpegScale{3, 8}}) {
    const auto whole = data::decode_jpeg(bytes, scale);
    const auto size = scale.apply({437, 301});
    REQUIRE(whole.size(0) == size.height);
    REQUIRE(whole.size(1) == size.width);
    for (const data::PixelWindow region : {data::PixelWindow{0, 0, 10, 10}, data::PixelWindow{37, 21, 50, 77},
                                           data::PixelWindow{size.height - 19, size.width - 33, 19, 33}}) {
      INFO("scale " << scale.num << "/" << scale.denom << " region " << region.top << "," << region.left);
      CHECK(torch::equal(data::decode_jpeg(bytes, scale, region),
                         whole.narrow(0, region.top, region.height).narrow(1, region.left, region.width)));
    }
  }
  CHECK_THROWS_WITH(data::decode_jpeg(bytes, {1, 1}, data::PixelWindow{300, 0, 2, 2}), Catch::Contains("outside"));
}

TEST_CASE("Not-a-JPEG and truncated files are errors that say so") {
  CHECK_THROWS_WITH(data::jpeg_size("hello, world"), Catch::Contains("not a JPEG"));
  const std::string bytes = data::encode_jpeg(photo(200, 200, 0), 90);
  CHECK_THROWS_WITH(data::decode_jpeg(bytes.substr(0, bytes.size() / 2), {1, 1}), Catch::Contains("truncated JPEG"));
}

TEST_CASE("Evaluation transform: resize the shorter side, then the center crop, as torchvision does") {
  testing::TempDir dir;
  const std::string bytes = data::encode_jpeg(photo(375, 500, 1.0), 95);
  testing::write_bytes(dir.file("a.jpg"), bytes);
  data::JpegFiles files({dir.file("a.jpg")}, data::ImageFolderOptions().image_size(224).resize(256));
  const auto image = files.load(0, nullptr);
  REQUIRE(image.sizes() == torch::IntArrayRef({3, 224, 224}));
  // Reference: LibTorch's antialiased bilinear resize of the full-size decode to 256 x 341
  // (shorter side 256, longer int(256 * 500 / 375)), crop at round(16), round(58.5).
  namespace F = torch::nn::functional;
  const auto full = data::decode_jpeg(bytes, {1, 1}).permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat);
  const auto resized = F::interpolate(
      full, F::InterpolateFuncOptions().size(std::vector<int64_t>{256, 341}).mode(torch::kBilinear).align_corners(false).antialias(true));
  const auto reference = resized.squeeze(0).narrow(1, 16, 224).narrow(2, 59, 224);
  CHECK(mean_abs_difference(image, reference) < 1.5);
  // A crop one pixel off is clearly further away: the test can tell the offsets apart.
  CHECK(mean_abs_difference(image, resized.squeeze(0).narrow(1, 16, 224).narrow(2, 49, 224)) > 3.0);
}

TEST_CASE("Training transform: seeded RandomResizedCrop and flip of S x S") {
  testing::TempDir dir;
  testing::write_bytes(dir.file("a.jpg"), data::encode_jpeg(photo(375, 500, 2.0), 90));
  const std::string gray_path = dir.file("gray.jpg");
  testing::write_bytes(gray_path, data::encode_jpeg(torch::full({300, 400, 3}, 77, torch::kUInt8), 90));
  data::JpegFiles files({dir.file("a.jpg"), gray_path}, data::ImageFolderOptions().image_size(96));
  std::mt19937_64 a(5), b(5), c(6);
  const auto first = files.load(0, &a), again = files.load(0, &b), other = files.load(0, &c);
  REQUIRE(first.sizes() == torch::IntArrayRef({3, 96, 96}));
  CHECK(torch::equal(first, again));
  CHECK(!torch::equal(first, other));
  // Crops of a uniform image are that colour, at any scale.
  for (int seed = 0; seed < 8; ++seed) {
    std::mt19937_64 random(seed);
    const auto gray = files.load(1, &random).to(torch::kInt);
    CHECK((gray - 77).abs().max().item<int>() <= 1);
  }
}

TEST_CASE("ImageFolder lists classes in sorted order and labels files by folder") {
  testing::TempDir dir;
  write_folder(dir.path(), "train", {"zebra", "ant", "moth"}, 2, 40, 48);
  fs::create_directories(dir.file("train/.hidden"));
  testing::write_bytes(dir.file("train/ant/notes.txt"), "not an image");
  data::ImageFolder folder(dir.path(), "train", data::ImageFolderOptions().image_size(32).resize(36));
  CHECK(folder.classes() == std::vector<std::string>{"ant", "moth", "zebra"});
  REQUIRE(folder.size().value() == 6);
  CHECK(folder.targets().equal(torch::tensor({0, 0, 1, 1, 2, 2}, torch::kLong)));
  CHECK(folder.files()->path(4) == dir.file("train/zebra/0.jpg"));
  const auto example = folder.get(5);
  CHECK(example.data.sizes() == torch::IntArrayRef({3, 32, 32}));
  CHECK(example.target.item<int64_t>() == 2);

  CHECK_THROWS_WITH(data::ImageFolder(dir.path(), "val", {}), Catch::Contains(dir.file("val")) && Catch::Contains("not found"));
  fs::create_directories(dir.file("empty/ant"));
  CHECK_THROWS_WITH(data::ImageFolder(dir.path(), "empty", {}), Catch::Contains("no image files"));
}

TEST_CASE("Unreadable images are skipped and counted, or with strict are an error naming the file") {
  testing::TempDir dir;
  write_folder(dir.path(), "train", {"a", "b"}, 3, 40, 40);
  const std::string good = data::encode_jpeg(photo(200, 200, 9), 90);
  testing::write_bytes(dir.file("train/a/1.jpg"), good.substr(0, good.size() / 2));  // truncated
  testing::write_bytes(dir.file("train/b/0.jpg"), "\x89PNG\r\n\x1a\n not really");      // not a JPEG
  auto options = data::ImageFolderOptions().image_size(32).resize(0);
  data::ImageFolder folder(dir.path(), "train", options);
  std::vector<int64_t> kept;
  const auto images = folder.files()->load_batch(torch::arange(6), false, 1, kept);
  CHECK(kept == std::vector<int64_t>{0, 2, 4, 5});
  CHECK(images.size(0) == 4);
  CHECK(folder.files()->skipped() == 2);
  folder.files()->load_batch(torch::arange(6), true, 2, kept);
  CHECK(folder.files()->skipped() == 2);  // distinct files

  // Batches carry the labels of the images they kept.
  data::DataSplits splits;
  splits.info = {"imagefolder", 3, 32, 32, 2, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}};
  const data::LabeledImages split{torch::Tensor(), folder.targets(), folder.files()};
  data::BatchOptions batch_options;
  batch_options.batch_size = 6;
  const auto batch = data::EpochBatches(split, splits.info, batch_options, 0, torch::kCPU).get(0);
  CHECK(batch.targets.equal(torch::tensor({0, 0, 1, 1}, torch::kLong)));

  data::ImageFolder strict(dir.path(), "train", options.strict(true));
  CHECK_THROWS_WITH(strict.files()->load_batch(torch::arange(6), false, 1, kept),
                    Catch::Contains(dir.file("train/a/1.jpg")) && Catch::Contains("truncated"));
}

TEST_CASE("JPEG batches are the same with any number of prefetching workers") {
  testing::TempDir dir;
  write_folder(dir.path(), "train", {"a", "b", "c"}, 7, 50, 60);
  data::BatchOptions options;
  options.batch_size = 4;
  options.shuffle = true;
  options.drop_last = true;
  options.augment = true;
  const data::DatasetInfo info{"imagefolder", 3, 32, 32, 3, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}};
  auto batches_with = [&](int64_t workers) {
    data::ImageFolder folder(dir.path(), "train", data::ImageFolderOptions().image_size(32).workers(workers));
    const data::LabeledImages split{torch::Tensor(), folder.targets(), folder.files()};
    data::EpochBatches batches(split, info, options, 11, torch::kCPU);
    std::vector<data::Batch> out;
    for (int64_t b = 0; b < batches.size(); ++b) out.push_back(batches.get(b));
    return out;
  };
  const auto serial = batches_with(0), parallel = batches_with(3);
  REQUIRE(serial.size() == 5);
  REQUIRE(parallel.size() == serial.size());
  for (size_t b = 0; b < serial.size(); ++b) {
    CHECK(torch::equal(serial[b].images, parallel[b].images));
    CHECK(torch::equal(serial[b].targets, parallel[b].targets));
  }
  CHECK(!torch::equal(serial[0].images, serial[1].images));
}

TEST_CASE("Prefetching workers run at most 2 x workers batches ahead of the consumer") {
  testing::TempDir dir;
  write_folder(dir.path(), "train", {"a", "b"}, 10, 40, 40);  // 20 images, 10 batches of 2
  data::ImageFolder folder(dir.path(), "train", data::ImageFolderOptions().image_size(32).resize(32).workers(2));
  const data::LabeledImages split{torch::Tensor(), folder.targets(), folder.files()};
  const data::DatasetInfo info{"imagefolder", 3, 32, 32, 2, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}};
  data::BatchOptions options;
  options.batch_size = 2;
  data::EpochBatches batches(split, info, options, 0, torch::kCPU);
  REQUIRE(batches.get(0).targets.size(0) == 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the workers fill their window
  // Batches made from here on find no files: only those already made (1..4) hold images.
  fs::remove_all(dir.file("train"));
  std::vector<int64_t> sizes;
  for (int64_t b = 1; b < batches.size(); ++b) sizes.push_back(batches.get(b).targets.size(0));
  CHECK(sizes == std::vector<int64_t>{2, 2, 2, 2, 0, 0, 0, 0, 0});
}

TEST_CASE("load_splits reads an ImageFolder tree with a held-out val split and a test folder") {
  testing::TempDir dir;
  write_folder(dir.path(), "train", {"cat", "dog"}, 5, 40, 40);
  write_folder(dir.path(), "val", {"cat", "dog"}, 2, 40, 40);
  config::DataConfig config;
  config.dataset = config::Dataset::kImageFolder;
  config.root = dir.path();
  config.image_size = 32;
  config.resize = 36;
  config.val_size = 4;
  const auto splits = data::load_splits(config, 3);
  CHECK(splits.info.num_classes == 2);
  CHECK(splits.info.height == 32);
  CHECK(splits.train.size() == 6);
  CHECK(splits.val.size() == 4);
  CHECK(splits.test.size() == 4);
  REQUIRE(splits.val.files);
  CHECK(splits.val.files->size() == 4);

  write_folder(dir.path(), "other", {"cat", "cow"}, 1, 40, 40);
  config.test_dir = "other";
  CHECK_THROWS_WITH(data::load_splits(config, 3), Catch::Contains("class folders of other/"));
}

// The CIFAR-10 copy in ../shared/data is both an ImageFolder of real JPEGs and (through
// prepare_cifar10.sh, which decodes with djpeg) the official binary layout. Read at 32 x 32 with
// no resize, the folder must give exactly the binary files' pixels and labels.
TEST_CASE("Real JPEGs: the CIFAR-10 ImageFolder equals the prepared binary files", "[real-data]") {
  const char* env = std::getenv("QROBUST_DATA");
  const std::string root = env != nullptr ? env : std::string(QROBUST_SOURCE_DIR) + "/data";
  if (!fs::exists(root + "/cifar10-jpeg/test") || !fs::exists(root + "/cifar-10-batches-bin/test_batch.bin")) {
    WARN("no prepared CIFAR-10 copy in " << root << " (scripts/prepare_data.sh makes it): not checked");
    return;
  }
  data::ImageFolder folder(root + "/cifar10-jpeg", "test", data::ImageFolderOptions().image_size(32).resize(0).strict(true));
  data::CIFAR10 binary(root + "/cifar-10-batches-bin", data::CIFAR10::Mode::kTest);
  REQUIRE(folder.size().value() == 10000);
  std::vector<int64_t> kept;
  const auto images = folder.files()->load_batch(torch::arange(10000), false, 0, kept);
  // The binary file is in a shuffled order: compare the two as multisets of (label, pixels).
  auto records = [](const torch::Tensor& pixels, const torch::Tensor& labels) {
    std::map<std::string, int> counts;
    const auto flat = pixels.reshape({pixels.size(0), -1}).contiguous();
    for (int64_t i = 0; i < flat.size(0); ++i) {
      std::string key(1, static_cast<char>(labels[i].item<int64_t>()));
      key.append(reinterpret_cast<const char*>(flat[i].data_ptr<uint8_t>()), static_cast<size_t>(flat.size(1)));
      ++counts[key];
    }
    return counts;
  };
  const auto from_folder = records(images, folder.targets()), from_binary = records(binary.images(), binary.targets());
  CHECK(from_folder.size() > 9900);  // CIFAR-10 has a few duplicate images
  CHECK(from_folder == from_binary);
}
