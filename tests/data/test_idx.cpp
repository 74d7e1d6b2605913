#include <catch2/catch.hpp>

#include "data/datasets.h"
#include "data/idx.h"
#include "test_support.h"
#include "util/atomic_file.h"

using namespace qrobust;

TEST_CASE("IDX reader loads plain and gzipped files identically") {
  testing::TempDir plain, gzipped;
  testing::write_idx(plain.path(), 20, 8, false);
  testing::write_idx(gzipped.path(), 20, 8, true);
  data::IdxDataset a(plain.path(), data::IdxDataset::Mode::kTrain);
  data::IdxDataset b(gzipped.path(), data::IdxDataset::Mode::kTrain);
  CHECK(a.images().sizes() == torch::IntArrayRef({20, 1, 28, 28}));
  CHECK(torch::equal(a.images(), b.images()));
  CHECK(torch::equal(a.targets(), b.targets()));
  data::IdxDataset test(gzipped.path(), data::IdxDataset::Mode::kTest);
  CHECK(test.size().value() == 8);
  // The generator's labels come back.
  auto expected = testing::synthetic_images(20, 1, 28, 1);
  CHECK(torch::equal(a.targets(), expected.second));
  CHECK(torch::equal(a.images(), expected.first));
}

TEST_CASE("IDX reader rejects wrong magic, truncation and trailing data, naming the file", "[corpus]") {
  testing::TempDir dir;
  testing::write_idx(dir.path(), 10, 4, false);
  const auto images = dir.file("train-images-idx3-ubyte");
  const auto labels = dir.file("train-labels-idx1-ubyte");
  const auto bytes = util::read_file(images);
  testing::save_corpus_sample("idx", bytes);
  testing::save_corpus_sample("idx", util::read_file(labels));

  SECTION("header dimensions whose product overflows or exceeds any data set") {
    std::string huge = bytes;
    for (size_t i = 4; i < 16; ++i) huge[i] = '\xff';  // 3 x (2^32 - 1)
    testing::write_bytes(images, huge);
    CHECK_THROWS_WITH(data::read_idx_images(images), Catch::StartsWith(images) && Catch::Contains("promise more than"));
    huge[4] = huge[5] = huge[6] = '\0';  // 255 x (2^32 - 1)^2 still does
    testing::write_bytes(images, huge);
    CHECK_THROWS_WITH(data::read_idx_images(images), Catch::Contains("promise more than"));
    // No images of 3.1e9 x 3.0e9 pixels: no bytes, but strides that overflow (a crash libFuzzer found).
    testing::write_bytes(images, std::string("\x00\x00\x08\x03\x00\x00\x00\x00\xb9\x01\xba\x08\xb4\xa0\xb6\xb1", 16));
    CHECK_THROWS_WITH(data::read_idx_images(images), Catch::Contains("promise more than"));
  }
  SECTION("wrong magic: a label file where images are expected") {
    CHECK_THROWS_WITH(data::read_idx_images(labels), Catch::StartsWith(labels) && Catch::Contains("magic number 2049, expected 2051"));
  }
  SECTION("truncated") {
    testing::write_bytes(images, bytes.substr(0, bytes.size() - 5));
    CHECK_THROWS_WITH(data::read_idx_images(images), Catch::StartsWith(images) && Catch::Contains("truncated"));
  }
  SECTION("shorter than the header") {
    testing::write_bytes(images, bytes.substr(0, 6));
    CHECK_THROWS_WITH(data::read_idx_images(images), Catch::StartsWith(images) && Catch::Contains("truncated"));
  }
  SECTION("trailing data") {
    testing::write_bytes(images, bytes + "xyz");
    CHECK_THROWS_WITH(data::read_idx_images(images), Catch::StartsWith(images) && Catch::Contains("trailing data"));
  }
  SECTION("image and label counts differ") {
    testing::TempDir other;
    testing::write_idx(other.path(), 12, 4, false);
    testing::write_bytes(labels, util::read_file(other.file("train-labels-idx1-ubyte")));
    CHECK_THROWS_WITH(data::IdxDataset(dir.path(), data::IdxDataset::Mode::kTrain), Catch::Contains("holds 12 labels but"));
  }
  SECTION("truncated gzip stream") {
    testing::TempDir gz;
    testing::write_idx(gz.path(), 10, 4, true);
    const auto path = gz.file("train-images-idx3-ubyte.gz");
    const auto compressed = util::read_file(path);
    testing::write_bytes(path, compressed.substr(0, compressed.size() / 2));
    CHECK_THROWS_WITH(data::read_idx_images(path), Catch::StartsWith(path));
  }
}

TEST_CASE("an empty split is a data error naming the folder, not zero samples evaluated") {
  testing::TempDir dir;
  testing::write_idx(dir.path(), 10, 0, false);  // a test file with no images
  config::DataConfig config;
  config.dataset = config::Dataset::kFashionMnist;
  config.root = dir.path();
  CHECK_THROWS_WITH(data::load_splits(config, 1),
                    Catch::StartsWith(dir.path()) && Catch::Contains("the test split has no images"));
  testing::TempDir empty_train;
  testing::write_idx(empty_train.path(), 0, 4, false);
  config.root = empty_train.path();
  config.val_size = 5;
  CHECK_THROWS_WITH(data::load_splits(config, 1), Catch::Contains("the training split has no images"));
}
