#pragma once
// A bounds-checked unpickler for what a PyTorch state dict or a qrobust checkpoint holds: dicts
// (plain and OrderedDict), lists, tuples, strings, integers, floats, booleans, None and tensors.
// The input is untrusted:
//   - only the opcodes such files use are accepted, and no object is ever called: the few
//     globals a state dict names (OrderedDict, _rebuild_tensor_v2, LibTorch's type tags) are
//     interpreted, anything else is an error;
//   - stack underflow, a missing mark, an unknown memo entry or a container operation on a
//     non-container is an error, as is nesting deeper than kMaxDepth;
//   - every value lives in one arena, so teardown never recurses and shared or cyclic
//     references (which the memo allows) cannot be freed twice;
//   - a tensor is a TensorRef: where its elements lie in the archive, checked when it is built
//     (known dtype, sizes and strides >= 0, every element inside its storage). Its bytes are
//     read later, by io::TorchArchive, once the caller has checked its name and shape.
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

namespace qrobust::io {

constexpr int kMaxDepth = 64;

struct TensorRef {
  c10::ScalarType dtype = c10::ScalarType::Undefined;
  std::string storage;        // the record data/<storage> of the archive
  int64_t storage_numel = 0;  // elements the storage holds
  int64_t offset = 0;         // of the first element, in elements
  std::vector<int64_t> sizes, strides;
  int64_t numel() const;
};

class Value {
 public:
  enum class Kind { kNone, kBool, kInt, kFloat, kString, kTuple, kList, kDict, kTensor, kGlobal, kStorage, kMark };
  Kind kind() const { return kind_; }
  bool is(Kind kind) const { return kind_ == kind; }
  // describe(kind()); for a global, its name.
  std::string description() const;
  int64_t integer() const { return integer_; }  // bool, int
  double number() const { return number_; }
  const std::string& text() const { return text_; }  // string; global: "module.name"
  // Values are read-only outside the unpickler, so handing out the arena's pointers is safe.
  const std::vector<Value*>& items() const { return items_; }                       // tuple, list
  const std::vector<std::pair<Value*, Value*>>& entries() const { return entries_; }  // dict
  const TensorRef& tensor() const { return tensor_; }
  // The value of `key` in a dict whose keys are strings; null when it has none.
  const Value* find(const std::string& key) const;

 private:
  friend class Unpickler;
  Kind kind_ = Kind::kNone;
  int depth_ = 0;  // levels of containers below it, as built (0 for a scalar)
  int64_t integer_ = 0;
  double number_ = 0;
  std::string text_;
  std::vector<Value*> items_;
  std::vector<std::pair<Value*, Value*>> entries_;
  TensorRef tensor_;
};

// "an integer", "a string", ... for error messages.
std::string describe(Value::Kind kind);

// The values of one pickle; root() is what it returns. Moves keep the values where they are.
class Pickle {
 public:
  const Value& root() const { return *root_; }
  // Every tensor referenced, in the order the pickle built them.
  const std::vector<const Value*>& tensors() const { return tensors_; }

 private:
  friend class Unpickler;
  std::deque<Value> arena_;
  Value* root_ = nullptr;
  std::vector<const Value*> tensors_;
};

// Throws RuntimeFailure ("malformed pickle ...", "unsupported ...") on anything outside what a
// state dict holds. The message does not name the file; the caller adds that.
Pickle unpickle(const std::string& bytes);

}  // namespace qrobust::io
