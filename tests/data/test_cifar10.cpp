#include <catch2/catch.hpp>
#include <filesystem>

#include "data/cifar10.h"
#include "test_support.h"
#include "util/atomic_file.h"
#include "util/errors.h"

using namespace qrobust;

TEST_CASE("CIFAR-10 reader loads records as uint8 RGB planes with their labels", "[corpus]") {
  testing::TempDir dir;
  testing::write_cifar10(dir.path(), 6);
  // Overwrite the test file with one record whose pixel bytes are 0, 1, 2, ... (mod 256).
  std::string record(1 + 3072, '\0');
  record[0] = 7;
  for (int i = 0; i < 3072; ++i) record[1 + i] = static_cast<char>(i % 256);
  testing::write_bytes(dir.file("test_batch.bin"), record);
  testing::save_corpus_sample("cifar10", record + record);

  data::CIFAR10 train(dir.path(), data::CIFAR10::Mode::kTrain);
  CHECK(train.size().value() == 30);
  CHECK(train.images().sizes() == torch::IntArrayRef({30, 3, 32, 32}));
  CHECK(train.images().dtype() == torch::kUInt8);

  data::CIFAR10 test(dir.path(), data::CIFAR10::Mode::kTest);
  REQUIRE(test.size().value() == 1);
  CHECK(test.targets()[0].item<int64_t>() == 7);
  const auto image = test.get(0).data;
  CHECK(image[0][0][1].item<int>() == 1);         // red plane, row 0, column 1
  CHECK(image[1][0][0].item<int>() == 1024 % 256);  // green plane starts at byte 1024
  CHECK(image[2][31][31].item<int>() == 3071 % 256);
}

TEST_CASE("CIFAR-10 reader rejects missing, truncated and mislabelled files, naming the file") {
  testing::TempDir dir;
  testing::write_cifar10(dir.path(), 4);
  const auto file = dir.file("data_batch_3.bin");

  SECTION("missing") {
    std::filesystem::remove(file);
    CHECK_THROWS_WITH(data::CIFAR10(dir.path(), data::CIFAR10::Mode::kTrain),
                      Catch::StartsWith(file) && Catch::Contains("not found"));
  }
  SECTION("truncated") {
    const auto bytes = util::read_file(file);
    testing::write_bytes(file, bytes.substr(0, bytes.size() - 100));
    CHECK_THROWS_WITH(data::CIFAR10(dir.path(), data::CIFAR10::Mode::kTrain),
                      Catch::StartsWith(file) && Catch::Contains("truncated"));
  }
  SECTION("label out of range") {
    auto bytes = util::read_file(file);
    bytes[2 * 3073] = 42;
    testing::write_bytes(file, bytes);
    CHECK_THROWS_WITH(data::CIFAR10(dir.path(), data::CIFAR10::Mode::kTrain),
                      Catch::StartsWith(file) && Catch::Contains("record 2 has label 42"));
  }
}
