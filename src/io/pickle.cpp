#include "io/pickle.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "util/errors.h"

namespace qrobust::io {
namespace {

c10::ScalarType storage_dtype(const std::string& storage_class) {
  static const std::map<std::string, c10::ScalarType> types = {
      {"torch.FloatStorage", c10::kFloat},  {"torch.DoubleStorage", c10::kDouble},
      {"torch.HalfStorage", c10::kHalf},    {"torch.BFloat16Storage", c10::kBFloat16},
      {"torch.LongStorage", c10::kLong},    {"torch.IntStorage", c10::kInt},
      {"torch.ShortStorage", c10::kShort},  {"torch.CharStorage", c10::kChar},
      {"torch.ByteStorage", c10::kByte},    {"torch.BoolStorage", c10::kBool}};
  const auto found = types.find(storage_class);
  if (found == types.end()) throw RuntimeFailure("unsupported tensor storage " + storage_class);
  return found->second;
}

// a * b and a + b, or an error: sizes in a crafted file must not wrap around.
int64_t checked_mul(int64_t a, int64_t b) {
  int64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) throw RuntimeFailure("malformed tensor in the pickle (size overflows)");
  return out;
}
int64_t checked_add(int64_t a, int64_t b) {
  int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out)) throw RuntimeFailure("malformed tensor in the pickle (size overflows)");
  return out;
}

}  // namespace

int64_t TensorRef::numel() const {
  int64_t n = 1;
  for (const int64_t size : sizes) n = checked_mul(n, size);
  return n;
}

std::string Value::description() const { return kind_ == Kind::kGlobal ? "the global " + text_ : describe(kind_); }

std::string describe(Value::Kind kind) {
  using Kind = Value::Kind;
  switch (kind) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "a boolean";
    case Kind::kInt: return "an integer";
    case Kind::kFloat: return "a float";
    case Kind::kString: return "a string";
    case Kind::kTuple: return "a tuple";
    case Kind::kList: return "a list";
    case Kind::kDict: return "a dict";
    case Kind::kTensor: return "a tensor";
    case Kind::kGlobal: return "a global";
    case Kind::kStorage: return "a storage";
    case Kind::kMark: return "a mark";
  }
  return "?";
}

const Value* Value::find(const std::string& key) const {
  for (const auto& [k, v] : entries_)
    if (k->is(Kind::kString) && k->text() == key) return v;
  return nullptr;
}

class Unpickler {
 public:
  explicit Unpickler(const std::string& bytes) : bytes_(bytes) {}

  Pickle run() {
    using K = Value::Kind;
    for (;;) {
      const auto op = static_cast<unsigned char>(take(1)[0]);
      switch (op) {
        case 0x80: take(1); break;  // PROTO
        case 0x95: take(8); break;  // FRAME
        case '(': push(make(K::kMark)); break;
        case '}': push(make(K::kDict)); break;
        case ']': push(make(K::kList)); break;
        case ')': push(make(K::kTuple)); break;
        case 'N': push(make(K::kNone)); break;
        case 0x88: case 0x89: push(integer(op == 0x88, K::kBool)); break;  // NEWTRUE, NEWFALSE
        case 'J': push(integer(static_cast<int32_t>(little(4)), K::kInt)); break;
        case 'K': push(integer(static_cast<int64_t>(little(1)), K::kInt)); break;
        case 'M': push(integer(static_cast<int64_t>(little(2)), K::kInt)); break;
        case 0x8a: push(integer(long1(), K::kInt)); break;
        case 'G': {  // BINFLOAT, big-endian
          uint64_t bits = 0;
          for (char c : take(8)) bits = (bits << 8) | static_cast<unsigned char>(c);
          Value* value = make(K::kFloat);
          std::memcpy(&value->number_, &bits, 8);
          push(value);
          break;
        }
        case 'X': case 'T': push(string(take(little(4)))); break;   // BINUNICODE, BINSTRING
        case 0x8c: case 'U': push(string(take(little(1)))); break;  // SHORT_BINUNICODE, SHORT_BINSTRING
        case 'q': memo_[little(1)] = top(); break;                   // BINPUT
        case 'r': memo_[little(4)] = top(); break;                   // LONG_BINPUT
        case 0x94: memo_[memo_.size()] = top(); break;               // MEMOIZE
        case 'h': push(memo(little(1))); break;                      // BINGET
        case 'j': push(memo(little(4))); break;                      // LONG_BINGET
        case 'c': {                                                  // GLOBAL module\nname\n
          std::string module = line();
          push(global(module + "." + line()));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          const Value* name = pop_kind(K::kString, "STACK_GLOBAL");
          const Value* module = pop_kind(K::kString, "STACK_GLOBAL");
          push(global(module->text_ + "." + name->text_));
          break;
        }
        case 't': push(tuple(pop_to_mark())); break;
        case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
          std::vector<Value*> items(op - 0x84);
          for (size_t i = items.size(); i-- > 0;) items[i] = pop();
          push(tuple(items));
          break;
        }
        case 'a': {  // APPEND
          Value* value = pop();
          add_item(container(K::kList, "APPEND"), value);
          break;
        }
        case 'e': {  // APPENDS
          const auto values = pop_to_mark();
          Value* list = container(K::kList, "APPENDS");
          for (Value* value : values) add_item(list, value);
          break;
        }
        case 's': {  // SETITEM
          Value* value = pop();
          Value* key = pop();
          add_entry(container(K::kDict, "SETITEM"), key, value);
          break;
        }
        case 'u': {  // SETITEMS
          const auto values = pop_to_mark();
          if (values.size() % 2) malformed("SETITEMS with an odd number of values");
          Value* dict = container(K::kDict, "SETITEMS");
          for (size_t i = 0; i < values.size(); i += 2) add_entry(dict, values[i], values[i + 1]);
          break;
        }
        case 'Q': push(storage(pop())); break;  // BINPERSID
        case 'R': {                              // REDUCE
          Value* args = pop_kind(K::kTuple, "REDUCE");
          Value* callable = pop_kind(K::kGlobal, "REDUCE");
          push(reduce(*callable, *args));
          break;
        }
        case 'b': {  // BUILD: only an OrderedDict's state (its _metadata), which is not needed
          pop();
          container(K::kDict, "BUILD");
          break;
        }
        case '.': {  // STOP
          pickle_.root_ = pop();
          if (!stack_.empty()) malformed("values left on the stack at STOP");
          return std::move(pickle_);
        }
        default: throw RuntimeFailure("unsupported pickle opcode 0x" + hex(op) + " at byte " + std::to_string(at_ - 1));
      }
    }
  }

 private:
  [[noreturn]] static void malformed(const std::string& what) { throw RuntimeFailure("malformed pickle (" + what + ")"); }

  std::string take(uint64_t n) {
    if (n > bytes_.size() - at_) malformed("truncated");
    at_ += n;
    return bytes_.substr(at_ - n, n);
  }
  uint64_t little(size_t n) {
    uint64_t value = 0;
    const std::string bytes = take(n);
    for (size_t i = n; i-- > 0;) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
    return value;
  }
  int64_t long1() {  // LONG1: n-byte two's complement
    const auto n = little(1);
    if (n > 8) throw RuntimeFailure("unsupported pickle integer wider than 64 bits");
    const uint64_t raw = little(n);
    if (n == 0 || n == 8) return static_cast<int64_t>(raw);
    const bool negative = (raw >> (8 * n - 1)) & 1;
    return negative ? static_cast<int64_t>(raw | (~uint64_t{0} << (8 * n))) : static_cast<int64_t>(raw);
  }
  std::string line() {
    const size_t end = bytes_.find('\n', at_);
    if (end == std::string::npos || end - at_ > 256) malformed("truncated GLOBAL");
    std::string text = bytes_.substr(at_, end - at_);
    at_ = end + 1;
    return text;
  }
  static std::string hex(unsigned value) {
    static const char digits[] = "0123456789abcdef";
    return {digits[value >> 4], digits[value & 15]};
  }

  Value* make(Value::Kind kind) {
    Value& value = pickle_.arena_.emplace_back();
    value.kind_ = kind;
    return &value;
  }
  Value* integer(int64_t value, Value::Kind kind) {
    Value* v = make(kind);
    v->integer_ = value;
    return v;
  }
  Value* string(std::string text) {
    Value* v = make(Value::Kind::kString);
    v->text_ = std::move(text);
    return v;
  }
  Value* global(std::string name) {
    Value* v = make(Value::Kind::kGlobal);
    v->text_ = std::move(name);
    return v;
  }
  Value* tuple(const std::vector<Value*>& items) {
    Value* v = make(Value::Kind::kTuple);
    for (Value* item : items) add_item(v, item);
    return v;
  }
  // A container's depth grows with what is put in it; a mark never goes in one.
  void nest(Value* container, const Value* child) {
    if (child->is(Value::Kind::kMark)) malformed("a mark inside a container");
    if (child->depth_ + 1 > kMaxDepth) malformed("nested deeper than " + std::to_string(kMaxDepth));
    container->depth_ = std::max(container->depth_, child->depth_ + 1);
  }
  void add_item(Value* container, Value* item) {
    nest(container, item);
    container->items_.push_back(item);
  }
  void add_entry(Value* dict, Value* key, Value* value) {
    nest(dict, key);
    nest(dict, value);
    dict->entries_.emplace_back(key, value);
  }

  void push(Value* value) { stack_.push_back(value); }
  Value* top() {
    if (stack_.empty()) malformed("empty stack");
    return stack_.back();
  }
  Value* pop() {
    Value* value = top();
    stack_.pop_back();
    return value;
  }
  Value* pop_kind(Value::Kind kind, const char* op) {
    Value* value = pop();
    if (!value->is(kind)) malformed(std::string(op) + " on " + value->description());
    return value;
  }
  // The top of the stack, which the opcode changes in place.
  Value* container(Value::Kind kind, const char* op) {
    Value* value = top();
    if (!value->is(kind)) malformed(std::string(op) + " on " + value->description());
    return value;
  }
  std::vector<Value*> pop_to_mark() {
    size_t mark = stack_.size();
    while (mark > 0 && !stack_[mark - 1]->is(Value::Kind::kMark)) --mark;
    if (mark == 0) malformed("no mark on the stack");
    std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark - 1);
    return items;
  }
  Value* memo(uint64_t index) {
    const auto found = memo_.find(index);
    if (found == memo_.end()) malformed("unknown memo entry " + std::to_string(index));
    return found->second;
  }

  // ('storage', storage class, key, location, element count) -> the archive's data/<key>.
  Value* storage(const Value* id) {
    using K = Value::Kind;
    const auto& a = id->items_;
    if (!id->is(K::kTuple) || a.size() != 5 || !a[0]->is(K::kString) || a[0]->text_ != "storage" ||
        !a[1]->is(K::kGlobal) || !a[2]->is(K::kString) || !a[4]->is(K::kInt))
      throw RuntimeFailure("unsupported persistent id in the pickle (not a tensor storage)");
    if (a[4]->integer_ < 0) malformed("storage " + a[2]->text_ + " with a negative size");
    const auto found = storages_.find(a[2]->text_);
    if (found != storages_.end()) {
      if (found->second->tensor_.dtype != storage_dtype(a[1]->text_) || found->second->integer_ != a[4]->integer_)
        malformed("storage " + a[2]->text_ + " declared twice, differently");
      return found->second;
    }
    Value* value = make(K::kStorage);
    value->tensor_.dtype = storage_dtype(a[1]->text_);
    value->tensor_.storage = a[2]->text_;
    value->integer_ = a[4]->integer_;
    storages_[a[2]->text_] = value;
    return value;
  }

  std::vector<int64_t> extents(const Value* tuple, const char* what) {
    if (!tuple->is(Value::Kind::kTuple) || tuple->items_.size() > 16)
      malformed(std::string("tensor ") + what + " is not a tuple of at most 16 integers");
    std::vector<int64_t> values;
    for (const Value* item : tuple->items_) {
      if (!item->is(Value::Kind::kInt) || item->integer_ < 0)
        malformed(std::string("tensor ") + what + " must be integers >= 0");
      values.push_back(item->integer_);
    }
    return values;
  }

  Value* reduce(const Value& callable, const Value& args) {
    using K = Value::Kind;
    const std::string& name = callable.text_;
    const auto& a = args.items_;
    if (name == "collections.OrderedDict") return make(K::kDict);
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      // (storage, storage_offset, size, stride, ...)
      if (a.size() < 4 || !a[0]->is(K::kStorage) || !a[1]->is(K::kInt)) malformed("tensor arguments");
      Value* value = make(K::kTensor);
      TensorRef& t = value->tensor_;
      t.dtype = a[0]->tensor_.dtype;
      t.storage = a[0]->tensor_.storage;
      t.storage_numel = a[0]->integer_;
      t.offset = a[1]->integer_;
      t.sizes = extents(a[2], "sizes");
      t.strides = extents(a[3], "strides");
      if (t.offset < 0 || t.offset > t.storage_numel) malformed("tensor with a storage offset outside its storage");
      if (t.sizes.size() != t.strides.size()) malformed("tensor sizes and strides differ in length");
      // Its contiguous strides must not overflow either, even when a size of 0 leaves it empty.
      int64_t extent = 1;
      for (const int64_t size : t.sizes) extent = checked_mul(extent, std::max<int64_t>(size, 1));
      if (t.numel() > 0) {  // the last element lies inside the storage
        int64_t last = t.offset;
        for (size_t d = 0; d < t.sizes.size(); ++d) last = checked_add(last, checked_mul(t.sizes[d] - 1, t.strides[d]));
        if (last >= t.storage_numel)
          malformed("tensor of " + std::to_string(t.numel()) + " elements reaches element " + std::to_string(last) +
                    " of storage " + t.storage + ", which holds " + std::to_string(t.storage_numel));
      }
      pickle_.tensors_.push_back(value);
      return value;
    }
    // A parameter (a saved module's), or a value with LibTorch's type tag or list builder (torch::pickle_save).
    if (name == "torch._utils._rebuild_parameter" || name == "torch.jit._pickle.restore_type_tag" ||
        name == "torch.jit._pickle.build_intlist" || name == "torch.jit._pickle.build_tensorlist" ||
        name == "torch.jit._pickle.build_doublelist" || name == "torch.jit._pickle.build_boollist") {
      if (a.empty()) malformed(name + " without arguments");
      return a[0];
    }
    throw RuntimeFailure("unsupported object " + name + " in the pickle (not a plain state dict)");
  }

  const std::string& bytes_;
  size_t at_ = 0;
  Pickle pickle_;
  std::vector<Value*> stack_;
  std::map<uint64_t, Value*> memo_;
  std::map<std::string, Value*> storages_;
};

Pickle unpickle(const std::string& bytes) { return Unpickler(bytes).run(); }

}  // namespace qrobust::io
