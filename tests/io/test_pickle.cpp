#include <catch2/catch.hpp>

#include <string>

#include "io/pickle.h"
#include "pickle_bytes.h"
#include "test_support.h"
#include "util/errors.h"

using namespace qrobust;
using namespace std::string_literals;  // the pickles hold NUL bytes
using testing::pickle::integer;
using testing::pickle::text;

TEST_CASE("unpickle: the pickles that crashed torch::pickle_load are one-line errors") {
  // Each of these made LibTorch 1.13's unpickler crash or corrupt its heap.
  for (const std::string bytes : {std::string("\x80\x02R."), std::string("\x80\x02\x87."), std::string("\x80\x02" "b."),
                                  std::string("\x80\x02Q."), std::string("\x80\x02\x81."), std::string("."),
                                  std::string(""), std::string("\x80\x02(t"), std::string("\x80\x02}N(u.")}) {
    INFO("pickle of " << bytes.size() << " bytes");
    CHECK_THROWS_AS(io::unpickle(bytes), RuntimeFailure);
  }
  CHECK_THROWS_WITH(io::unpickle("\x80\x02h\x05."), Catch::Contains("unknown memo entry 5"));
  CHECK_THROWS_WITH(io::unpickle("\x80\x02\x81."), Catch::Contains("unsupported pickle opcode 0x81"));
  CHECK_THROWS_WITH(io::unpickle("\x80\x02" "cos\nsystem\n" + text("ls") + "\x85R."),
                    Catch::Contains("unsupported object os.system"));
  CHECK_THROWS_WITH(io::unpickle("\x80\x02NN."), Catch::Contains("values left on the stack"));
}

TEST_CASE("unpickle: nesting a million deep is an error, not a stack overflow") {
  std::string tuples = "\x80\x02N" + std::string(1000000, '\x85') + ".";  // TUPLE1 of TUPLE1 of ... None
  CHECK_THROWS_WITH(io::unpickle(tuples), Catch::Contains("nested deeper than 64"));
  std::string lists = "\x80\x02" + std::string(1000000, ']') + std::string(999999, 'a') + ".";
  CHECK_THROWS_WITH(io::unpickle(lists), Catch::Contains("nested deeper than 64"));
  // 64 levels are fine.
  const auto deep = io::unpickle("\x80\x02N" + std::string(64, '\x85') + ".");
  CHECK(deep.root().is(io::Value::Kind::kTuple));
}

TEST_CASE("unpickle: a list that holds itself is read and freed without recursion") {
  const auto pickle = io::unpickle("\x80\x02]q\x00h\x00" "a."s);
  REQUIRE(pickle.root().is(io::Value::Kind::kList));
  REQUIRE(pickle.root().items().size() == 1);
  CHECK(pickle.root().items()[0] == &pickle.root());
}

TEST_CASE("unpickle: values as torch.save writes them", "[corpus]") {
  const std::string bytes = "\x80\x02}(" + text("a") + integer(-7) + text("b") + "G\x3f\xf8\0\0\0\0\0\0"s +
                                   text("c") + "(K\x01K\x02t" + text("d") + "\x88" + "u.";
  testing::save_corpus_sample("pickle", bytes);
  testing::save_corpus_sample("pickle", testing::pickle::tensor_dict(12, 2, {2, 5}, {5, 1}));
  const auto pickle = io::unpickle(bytes);
  const auto& root = pickle.root();
  REQUIRE(root.is(io::Value::Kind::kDict));
  CHECK(root.find("a")->integer() == -7);
  CHECK(root.find("b")->number() == 1.5);
  CHECK(root.find("c")->items().size() == 2);
  CHECK(root.find("d")->is(io::Value::Kind::kBool));
  CHECK(root.find("e") == nullptr);
}

TEST_CASE("unpickle: a tensor must lie inside its storage") {
  using testing::pickle::tensor_dict;
  const auto good = io::unpickle(tensor_dict(12, 2, {2, 5}, {5, 1}));
  REQUIRE(good.tensors().size() == 1);
  const auto& t = good.tensors()[0]->tensor();
  CHECK(t.dtype == c10::kFloat);
  CHECK(t.offset == 2);
  CHECK(t.sizes == std::vector<int64_t>{2, 5});
  CHECK(t.numel() == 10);
  // The last element is 2 + 5 + 4 = 11 of 12; one more and it is outside.
  CHECK_THROWS_WITH(io::unpickle(tensor_dict(11, 2, {2, 5}, {5, 1})), Catch::Contains("reaches element 11"));
  CHECK_THROWS_WITH(io::unpickle(tensor_dict(12, -1, {2}, {1})), Catch::Contains("storage offset outside its storage"));
  CHECK_THROWS_WITH(io::unpickle(tensor_dict(12, 13, {0}, {1})), Catch::Contains("storage offset outside its storage"));
  CHECK_THROWS_WITH(io::unpickle(tensor_dict(12, 0, {2}, {-1})), Catch::Contains("integers >= 0"));
  CHECK_THROWS_WITH(io::unpickle(tensor_dict(12, 0, {-2}, {1})), Catch::Contains("integers >= 0"));
  CHECK_THROWS_WITH(io::unpickle(tensor_dict(12, 0, {2, 2}, {1})), Catch::Contains("differ in length"));
  CHECK_THROWS_WITH(io::unpickle(tensor_dict(12, 0, {1 << 30, 1 << 30, 1 << 30}, {1, 1, 1})), Catch::Contains("overflows"));
  CHECK_THROWS_WITH(io::unpickle(tensor_dict(0, 0, {0, 1 << 30, 1 << 30, 1 << 30}, {1, 1, 1, 1})), Catch::Contains("overflows"));
  // An empty tensor may lie in an empty storage.
  CHECK_NOTHROW(io::unpickle(tensor_dict(0, 0, {0}, {1})));
  CHECK_THROWS_WITH(io::unpickle(tensor_dict(-1, 0, {0}, {1})), Catch::Contains("negative size"));
}
