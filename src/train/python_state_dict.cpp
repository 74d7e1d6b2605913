#include "train/python_state_dict.h"

#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "util/errors.h"

namespace qrobust::train {
namespace {

// A Python object as the unpickler builds it. Containers are shared, as in Python, so that the
// memo and the stack see the same dict or list.
struct PyObject;
using Object = std::shared_ptr<PyObject>;
struct PyObject {
  enum class Kind { kMark, kNone, kBool, kInt, kFloat, kString, kTuple, kList, kDict, kGlobal, kStorage, kTensor };
  Kind kind = Kind::kNone;
  int64_t integer = 0;  // bool, int; storage: element count
  double number = 0;
  std::string text;  // string; global "module.name"; storage: record key
  std::vector<Object> items;
  std::vector<std::pair<Object, Object>> entries;
  c10::ScalarType dtype = c10::ScalarType::Undefined;  // storage
  torch::Tensor tensor;
};

Object make(PyObject::Kind kind) {
  auto object = std::make_shared<PyObject>();
  object->kind = kind;
  return object;
}

c10::ScalarType storage_dtype(const std::string& storage_class) {
  static const std::map<std::string, c10::ScalarType> types = {
      {"torch.FloatStorage", torch::kFloat},  {"torch.DoubleStorage", torch::kDouble},
      {"torch.HalfStorage", torch::kHalf},    {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kLong},    {"torch.IntStorage", torch::kInt},
      {"torch.ShortStorage", torch::kShort},  {"torch.CharStorage", torch::kChar},
      {"torch.ByteStorage", torch::kByte},    {"torch.BoolStorage", torch::kBool}};
  const auto found = types.find(storage_class);
  if (found == types.end()) throw RuntimeFailure("unsupported tensor storage " + storage_class);
  return found->second;
}

std::vector<int64_t> integers(const Object& tuple) {
  std::vector<int64_t> values;
  for (const auto& item : tuple->items) values.push_back(item->integer);
  return values;
}

class Unpickler {
 public:
  Unpickler(std::string pickle, caffe2::serialize::PyTorchStreamReader& archive)
      : pickle_(std::move(pickle)), archive_(archive) {}

  Object run() {
    for (;;) {
      const auto op = static_cast<unsigned char>(next(1)[0]);
      switch (op) {
        case 0x80: next(1); break;  // PROTO
        case 0x95: next(8); break;  // FRAME
        case '(': stack_.push_back(make(PyObject::Kind::kMark)); break;
        case '}': stack_.push_back(make(PyObject::Kind::kDict)); break;
        case ']': stack_.push_back(make(PyObject::Kind::kList)); break;
        case ')': stack_.push_back(make(PyObject::Kind::kTuple)); break;
        case 'N': stack_.push_back(make(PyObject::Kind::kNone)); break;
        case 0x88: case 0x89: push_int(op == 0x88, PyObject::Kind::kBool); break;
        case 'J': push_int(static_cast<int32_t>(little(4)), PyObject::Kind::kInt); break;
        case 'K': push_int(static_cast<int64_t>(little(1)), PyObject::Kind::kInt); break;
        case 'M': push_int(static_cast<int64_t>(little(2)), PyObject::Kind::kInt); break;
        case 0x8a: {  // LONG1: n-byte two's complement
          const auto n = little(1);
          if (n > 8) throw RuntimeFailure("integer too large");
          const uint64_t raw = little(n);
          const int64_t value = n == 0 ? 0 : n == 8 ? static_cast<int64_t>(raw)
                                 : (raw >> (8 * n - 1)) ? static_cast<int64_t>(raw) - (int64_t{1} << (8 * n)) : static_cast<int64_t>(raw);
          push_int(value, PyObject::Kind::kInt);
          break;
        }
        case 'G': {  // BINFLOAT, big-endian
          uint64_t bits = 0;
          for (char c : next(8)) bits = (bits << 8) | static_cast<unsigned char>(c);
          auto value = make(PyObject::Kind::kFloat);
          std::memcpy(&value->number, &bits, 8);
          stack_.push_back(value);
          break;
        }
        case 'X': case 'T': push_string(next(little(4))); break;      // BINUNICODE, BINSTRING
        case 0x8c: case 'U': push_string(next(little(1))); break;     // SHORT_BINUNICODE, SHORT_BINSTRING
        case 'q': memo_[little(1)] = top(); break;                    // BINPUT
        case 'r': memo_[little(4)] = top(); break;                    // LONG_BINPUT
        case 0x94: memo_[memo_.size()] = top(); break;                // MEMOIZE
        case 'h': stack_.push_back(memo_.at(little(1))); break;       // BINGET
        case 'j': stack_.push_back(memo_.at(little(4))); break;       // LONG_BINGET
        case 'c': {                                                   // GLOBAL
          auto global = make(PyObject::Kind::kGlobal);
          global->text = line() + ".";
          global->text += line();
          stack_.push_back(global);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          const auto name = pop(), module = pop();
          auto global = make(PyObject::Kind::kGlobal);
          global->text = module->text + "." + name->text;
          stack_.push_back(global);
          break;
        }
        case 't': { auto tuple = make(PyObject::Kind::kTuple); tuple->items = pop_to_mark(); stack_.push_back(tuple); break; }
        case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
          auto tuple = make(PyObject::Kind::kTuple);
          tuple->items.resize(op - 0x84);
          for (size_t i = tuple->items.size(); i-- > 0;) tuple->items[i] = pop();
          stack_.push_back(tuple);
          break;
        }
        case 'a': { auto value = pop(); top()->items.push_back(value); break; }
        case 'e': { auto values = pop_to_mark(); auto& list = top()->items; list.insert(list.end(), values.begin(), values.end()); break; }
        case 's': { auto value = pop(), key = pop(); top()->entries.emplace_back(key, value); break; }
        case 'u': {
          const auto values = pop_to_mark();
          for (size_t i = 0; i + 1 < values.size(); i += 2) top()->entries.emplace_back(values[i], values[i + 1]);
          break;
        }
        case 'Q': stack_.push_back(storage(pop())); break;  // BINPERSID
        case 'R': { auto args = pop(), callable = pop(); stack_.push_back(reduce(callable, args)); break; }
        case 'b': pop(); break;  // BUILD: an OrderedDict's _metadata, not needed
        case '.': return pop();  // STOP
        default: throw RuntimeFailure("unsupported pickle opcode 0x" + hex(op));
      }
    }
  }

 private:
  std::string next(size_t n) {
    if (at_ + n > pickle_.size()) throw RuntimeFailure("truncated pickle");
    at_ += n;
    return pickle_.substr(at_ - n, n);
  }
  uint64_t little(size_t n) {
    uint64_t value = 0;
    const std::string bytes = next(n);
    for (size_t i = n; i-- > 0;) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
    return value;
  }
  std::string line() {
    const size_t end = pickle_.find('\n', at_);
    if (end == std::string::npos) throw RuntimeFailure("truncated pickle");
    std::string text = pickle_.substr(at_, end - at_);
    at_ = end + 1;
    return text;
  }
  static std::string hex(unsigned value) {
    static const char digits[] = "0123456789abcdef";
    return {digits[value >> 4], digits[value & 15]};
  }
  void push_int(int64_t value, PyObject::Kind kind) {
    auto object = make(kind);
    object->integer = value;
    stack_.push_back(object);
  }
  void push_string(std::string text) {
    auto object = make(PyObject::Kind::kString);
    object->text = std::move(text);
    stack_.push_back(object);
  }
  Object top() {
    if (stack_.empty()) throw RuntimeFailure("malformed pickle (empty stack)");
    return stack_.back();
  }
  Object pop() {
    Object object = top();
    stack_.pop_back();
    return object;
  }
  std::vector<Object> pop_to_mark() {
    std::vector<Object> items;
    while (top()->kind != PyObject::Kind::kMark) items.insert(items.begin(), pop());
    pop();
    return items;
  }

  // ('storage', storage class, key, location, element count) -> the archive's data/<key>.
  Object storage(const Object& id) {
    if (id->kind != PyObject::Kind::kTuple || id->items.size() < 5 || id->items[0]->text != "storage")
      throw RuntimeFailure("unsupported persistent id in the pickle");
    const std::string& key = id->items[2]->text;
    auto found = storages_.find(key);
    if (found != storages_.end()) return found->second;
    auto object = make(PyObject::Kind::kStorage);
    const auto dtype = storage_dtype(id->items[1]->text);
    const int64_t count = id->items[4]->integer;
    const auto [data, size] = archive_.getRecord("data/" + key);
    object->tensor = torch::empty({count}, torch::TensorOptions().dtype(dtype));
    if (size != static_cast<size_t>(object->tensor.nbytes()))
      throw RuntimeFailure("storage " + key + " holds " + std::to_string(size) + " bytes, expected " +
                           std::to_string(object->tensor.nbytes()));
    std::memcpy(object->tensor.data_ptr(), data.get(), size);
    storages_[key] = object;
    return object;
  }

  Object reduce(const Object& callable, const Object& args) {
    const std::string name = callable->kind == PyObject::Kind::kGlobal ? callable->text : "<not a global>";
    if (name == "collections.OrderedDict") return make(PyObject::Kind::kDict);
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      // (storage, storage_offset, size, stride, ...)
      const auto& a = args->items;
      if (a.size() < 4 || a[0]->kind != PyObject::Kind::kStorage) throw RuntimeFailure("malformed tensor in the pickle");
      auto tensor = make(PyObject::Kind::kTensor);
      tensor->tensor = a[0]->tensor.as_strided(integers(a[2]), integers(a[3]), a[1]->integer);
      return tensor;
    }
    // A parameter (saved module), or a container with LibTorch's type tag (torch::pickle_save).
    if ((name == "torch._utils._rebuild_parameter" || name == "torch.jit._pickle.restore_type_tag") && !args->items.empty())
      return args->items[0];
    throw RuntimeFailure("unsupported object " + name + " in the pickle (not a plain state dict)");
  }

  std::string pickle_;
  size_t at_ = 0;
  caffe2::serialize::PyTorchStreamReader& archive_;
  std::vector<Object> stack_;
  std::map<uint64_t, Object> memo_;
  std::map<std::string, Object> storages_;
};

}  // namespace

std::map<std::string, torch::Tensor> read_python_state_dict(const std::string& path) {
  Object root;
  try {
    caffe2::serialize::PyTorchStreamReader archive(path);
    const auto [data, size] = archive.getRecord("data.pkl");
    root = Unpickler(std::string(static_cast<const char*>(data.get()), size), archive).run();
  } catch (const c10::Error& e) {
    throw RuntimeFailure(path + ": not a zip archive written by torch.save (" + first_line(e.what()) + ")");
  } catch (const RuntimeFailure& e) {
    throw RuntimeFailure(path + ": " + e.what());
  } catch (const std::out_of_range&) {
    throw RuntimeFailure(path + ": malformed pickle (unknown memo entry)");
  }
  if (root->kind != PyObject::Kind::kDict) throw RuntimeFailure(path + ": holds no dict, so no state dict");
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [key, value] : root->entries) {
    if (key->kind != PyObject::Kind::kString || value->kind != PyObject::Kind::kTensor)
      throw RuntimeFailure(path + ": not a state dict (entries must map names to tensors)");
    tensors[key->text] = value->tensor;
  }
  return tensors;
}

}  // namespace qrobust::train
