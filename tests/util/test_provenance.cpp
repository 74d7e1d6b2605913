#include <catch2/catch.hpp>

#include "test_support.h"
#include "util/errors.h"
#include "util/provenance.h"

using namespace qrobust;

TEST_CASE("file_sha1 is the SHA-1 of a file's bytes (FIPS 180 examples), a missing file is an error naming it") {
  testing::TempDir dir;
  testing::write_bytes(dir.file("abc"), "abc");
  CHECK(util::file_sha1(dir.file("abc")) == "a9993e364706816aba3e25717850c26c9cd0d89d");
  testing::write_bytes(dir.file("two_blocks"), "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
  CHECK(util::file_sha1(dir.file("two_blocks")) == "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  testing::write_bytes(dir.file("empty"), "");
  CHECK(util::file_sha1(dir.file("empty")) == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  CHECK_THROWS_WITH(util::file_sha1(dir.file("missing")), Catch::Contains(dir.file("missing")));
}

TEST_CASE("provenance names the code, the library, the machine and the time") {
  const auto p = util::provenance();
  for (const char* key : {"qrobust", "git_sha", "libtorch", "host", "cpu", "time_utc"}) {
    INFO(key);
    CHECK(p.contains(key));
  }
  CHECK(p["time_utc"].get<std::string>().size() == 20);  // 2026-12-02T03:00:00Z
}
