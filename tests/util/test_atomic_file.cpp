#include <catch2/catch.hpp>
#include <filesystem>

#include "test_support.h"
#include "util/atomic_file.h"

using namespace qrobust;

TEST_CASE("write_file_atomically replaces the file and leaves no temporary behind") {
  testing::TempDir dir;
  const auto path = dir.file("out.json");
  util::write_file_atomically(path, "first");
  util::write_file_atomically(path, "second");
  CHECK(util::read_file(path) == "second");
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()) == 1);
}

TEST_CASE("a writer that fails leaves the previous file untouched") {
  testing::TempDir dir;
  const auto path = dir.file("out.json");
  util::write_file_atomically(path, "good");
  CHECK_THROWS_AS(util::commit_atomically(path,
                                          [](const std::string& temp) {
                                            testing::write_bytes(temp, "half");
                                            throw std::runtime_error("killed mid-write");
                                          }),
                  std::runtime_error);
  CHECK(util::read_file(path) == "good");
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()) == 1);
}
