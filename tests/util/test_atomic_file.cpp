#include <catch2/catch.hpp>
#include <filesystem>

#include "test_support.h"
#include "util/atomic_file.h"
#include "util/directory_lock.h"

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

TEST_CASE("a directory has one writer at a time, its holder removes the temporary files killed writers left") {
  testing::TempDir dir;
  const std::string run = dir.file("run");
  {
    util::DirectoryLock first(run, "qrobust train");
    CHECK(std::filesystem::is_directory(run));
    CHECK_THROWS_WITH(util::DirectoryLock(run, "qrobust sweep-bits"),
                      Catch::StartsWith(run + ": another qrobust process is writing here; qrobust sweep-bits refuses"));
    testing::write_bytes(run + "/.checkpoint.pt.4242.tmp", "half a checkpoint");
    testing::write_bytes(run + "/keep.tmp", "not ours");
  }
  util::DirectoryLock again(run, "qrobust train");  // released with its holder
  CHECK_FALSE(std::filesystem::exists(run + "/.checkpoint.pt.4242.tmp"));
  CHECK(std::filesystem::exists(run + "/keep.tmp"));
}
