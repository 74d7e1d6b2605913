#include <catch2/catch.hpp>
#include <torch/csrc/jit/serialization/pickle.h>

#include "io/torch_archive.h"
#include "pickle_bytes.h"
#include "test_support.h"
#include "util/atomic_file.h"
#include "util/errors.h"

using namespace qrobust;
namespace pk = qrobust::testing::pickle;

namespace {

std::string floats(std::vector<float> values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

}  // namespace

TEST_CASE("a torch archive's tensors load as saved, views included", "[corpus]") {
  testing::TempDir dir;
  const auto base = torch::arange(12, torch::kFloat);
  c10::Dict<std::string, torch::Tensor> dict;
  dict.insert("matrix", base.reshape({3, 4}));
  dict.insert("column", base.reshape({3, 4}).select(1, 2));  // a strided view of the same storage
  dict.insert("count", torch::tensor(int64_t{7}));
  const auto bytes = torch::pickle_save(dict);
  util::write_file_atomically(dir.file("a.pt"), std::string(bytes.begin(), bytes.end()));
  testing::save_corpus_sample("checkpoint", std::string(bytes.begin(), bytes.end()));

  io::TorchArchive archive(dir.file("a.pt"));
  const auto tensors = io::tensor_dict(archive.root(), archive.path(), "the dict");
  REQUIRE(tensors.size() == 3);
  CHECK(torch::equal(archive.load(tensors.at("matrix")), base.reshape({3, 4})));
  CHECK(torch::equal(archive.load(tensors.at("column")), torch::tensor({2.f, 6.f, 10.f})));
  CHECK(archive.load(tensors.at("count")).item<int64_t>() == 7);
}

TEST_CASE("crafted archives: every storage must be there and hold what it declares") {
  testing::TempDir dir;
  auto archive_with = [&](const std::string& pickle, const std::string& storage) {
    util::write_file_atomically(dir.file("c.pt"), pk::stored_zip({{"x/data.pkl", pickle}, {"x/data/0", storage}}));
    return dir.file("c.pt");
  };
  const std::string pickle = pk::tensor_dict(4, 0, {2, 2}, {2, 1});
  {
    io::TorchArchive archive(archive_with(pickle, floats({1, 2, 3, 4})));
    const auto t = io::tensor_dict(archive.root(), archive.path(), "the dict");
    CHECK(torch::equal(archive.load(t.at("w")), torch::tensor({{1.f, 2.f}, {3.f, 4.f}})));
  }
  CHECK_THROWS_WITH(io::TorchArchive(archive_with(pickle, floats({1, 2, 3}))),
                    Catch::StartsWith(dir.file("c.pt")) && Catch::Contains("holds 12 bytes, not the 4 elements"));
  CHECK_THROWS_WITH(io::TorchArchive(archive_with(pk::tensor_dict(4, 3, {2, 2}, {2, 1}), floats({1, 2, 3, 4}))),
                    Catch::StartsWith(dir.file("c.pt")) && Catch::Contains("reaches element 6"));
  util::write_file_atomically(dir.file("c.pt"), pk::stored_zip({{"x/data.pkl", pickle}}));
  CHECK_THROWS_WITH(io::TorchArchive(dir.file("c.pt")), Catch::Contains("storage 0 is not in the archive"));
  util::write_file_atomically(dir.file("c.pt"), pk::stored_zip({{"x/other.pkl", pickle}}));
  CHECK_THROWS_WITH(io::TorchArchive(dir.file("c.pt")), Catch::Contains("no data.pkl"));
  util::write_file_atomically(dir.file("c.pt"), pk::stored_zip({{"x/data.pkl", "\x80\x02R."}}));
  CHECK_THROWS_WITH(io::TorchArchive(dir.file("c.pt")), Catch::StartsWith(dir.file("c.pt") + ": malformed pickle"));
}

TEST_CASE("a changed byte anywhere in a record is an error naming the file") {
  testing::TempDir dir;
  const std::string zip = pk::stored_zip({{"x/data.pkl", pk::tensor_dict(4, 0, {4}, {1})}, {"x/data/0", floats({1, 2, 3, 4})}});
  // Flip one exponent bit of each weight in turn: the CRC-32 of the record no longer matches.
  const size_t data = zip.find(floats({1, 2, 3, 4}));
  REQUIRE(data != std::string::npos);
  for (size_t i = 0; i < 4; ++i) {
    std::string damaged = zip;
    damaged[data + 4 * i + 3] ^= 0x01;
    util::write_file_atomically(dir.file("d.pt"), damaged);
    io::TorchArchive archive(dir.file("d.pt"));
    const auto t = io::tensor_dict(archive.root(), archive.path(), "the dict");
    CHECK_THROWS_WITH(archive.load(t.at("w")), Catch::StartsWith(dir.file("d.pt")) && Catch::Contains("CRC-32"));
  }
}

TEST_CASE("zip structures out of bounds are errors, never reads past the file", "[corpus]") {
  testing::TempDir dir;
  const std::string zip = pk::stored_zip({{"x/data.pkl", pk::tensor_dict(4, 0, {4}, {1})}, {"x/data/0", floats({1, 2, 3, 4})}});
  testing::save_corpus_sample("checkpoint", zip);
  auto open = [&](const std::string& bytes) {
    util::write_file_atomically(dir.file("z.pt"), bytes);
    io::TorchArchive archive(dir.file("z.pt"));
    for (const auto& [name, t] : io::tensor_dict(archive.root(), archive.path(), "the dict")) archive.load(t);
  };
  CHECK_NOTHROW(open(zip));
  // Every truncation.
  for (size_t size = 0; size < zip.size(); ++size) {
    INFO("truncated to " << size << " bytes");
    CHECK_THROWS_AS(open(zip.substr(0, size)), RuntimeFailure);
  }
  // The directory offset (bytes -6..-3 of the end record) pointing past the end.
  std::string moved = zip;
  moved[moved.size() - 3] = '\x7f';
  CHECK_THROWS_WITH(open(moved), Catch::Contains("outside the file"));
  // A compressed entry: method 8 in the directory.
  std::string compressed = zip;
  compressed[compressed.find("PK\x01\x02") + 10] = 8;
  CHECK_THROWS_WITH(open(compressed), Catch::Contains("is compressed"));
}
