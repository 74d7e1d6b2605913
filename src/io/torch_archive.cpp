#include "io/torch_archive.h"

#include <cstring>

#include "util/errors.h"

namespace qrobust::io {
namespace {

// data.pkl of a state dict is a few tens of KiB even for ImageNet models.
constexpr uint64_t kMaxPickleBytes = 64ull << 20;

std::string find_prefix(const ZipReader& zip) {
  std::string prefix;
  for (const auto& name : zip.names()) {
    const size_t slash = name.find('/');
    if (slash == std::string::npos || name.compare(slash, std::string::npos, "/data.pkl") != 0) continue;
    if (!prefix.empty()) throw RuntimeFailure(zip.path() + ": holds more than one data.pkl");
    prefix = name.substr(0, slash + 1);
  }
  if (prefix.empty()) throw RuntimeFailure(zip.path() + ": not written by torch.save (no data.pkl in the archive)");
  return prefix;
}

}  // namespace

TorchArchive::TorchArchive(const std::string& path) : zip_(path), prefix_(find_prefix(zip_)) {
  const std::string pickle_name = prefix_ + "data.pkl";
  if (zip_.size(pickle_name) > kMaxPickleBytes)
    throw RuntimeFailure(path + ": data.pkl holds " + std::to_string(zip_.size(pickle_name)) +
                         " bytes, far more than a state dict's");
  try {
    pickle_ = unpickle(zip_.read(pickle_name));
  } catch (const RuntimeFailure& e) {
    const std::string message = e.what();
    if (message.rfind(path, 0) == 0) throw;
    throw RuntimeFailure(path + ": " + message);
  }
  for (const Value* tensor : pickle_.tensors()) {
    const TensorRef& t = tensor->tensor();
    const std::string record = prefix_ + "data/" + t.storage;
    if (!zip_.has(record)) throw RuntimeFailure(path + ": tensor storage " + t.storage + " is not in the archive");
    const auto element = static_cast<uint64_t>(c10::elementSize(t.dtype));
    const auto bytes = zip_.size(record);
    if (bytes % element != 0 || bytes / element != static_cast<uint64_t>(t.storage_numel))
      throw RuntimeFailure(path + ": tensor storage " + t.storage + " holds " + std::to_string(bytes) +
                           " bytes, not the " + std::to_string(t.storage_numel) + " elements it declares");
  }
}

torch::Tensor TorchArchive::load(const TensorRef& tensor) {
  auto found = storages_.find(tensor.storage);
  if (found == storages_.end()) found = storages_.emplace(tensor.storage, zip_.read(prefix_ + "data/" + tensor.storage)).first;
  const std::string& bytes = found->second;
  auto storage = torch::empty({tensor.storage_numel}, torch::TensorOptions().dtype(tensor.dtype));
  if (!bytes.empty()) std::memcpy(storage.data_ptr(), bytes.data(), bytes.size());
  // The constructor checked the record's size, and unpickle() that every element is inside it.
  return storage.as_strided(tensor.sizes, tensor.strides, tensor.offset).clone(at::MemoryFormat::Contiguous);
}

std::map<std::string, TensorRef> tensor_dict(const Value& dict, const std::string& path, const std::string& what) {
  if (!dict.is(Value::Kind::kDict))
    throw RuntimeFailure(path + ": " + what + " is " + dict.description() + ", not a dict of tensors");
  std::map<std::string, TensorRef> tensors;
  for (const auto& [key, value] : dict.entries()) {
    if (!key->is(Value::Kind::kString) || !value->is(Value::Kind::kTensor))
      throw RuntimeFailure(path + ": " + what + " maps " + key->description() + " to " + value->description() +
                           " (it must map names to tensors)");
    if (!tensors.emplace(key->text(), value->tensor()).second)
      throw RuntimeFailure(path + ": " + what + " holds tensor \"" + key->text() + "\" twice");
  }
  return tensors;
}

void check_tensors(const std::string& path, const torch::OrderedDict<std::string, torch::Tensor>& expected,
                   const std::map<std::string, TensorRef>& saved, const std::string& model) {
  for (const auto& item : expected) {
    const auto found = saved.find(item.key());
    if (found == saved.end()) throw UsageError(path + ": no tensor \"" + item.key() + "\", which " + model + " has");
    const TensorRef& t = found->second;
    if (t.sizes != item.value().sizes())
      throw UsageError(path + ": tensor \"" + item.key() + "\" is " + shape_text(t.sizes) + ", " + model + " has " +
                       shape_text(item.value().sizes()));
    const auto want = item.value().scalar_type();
    if (c10::isFloatingType(t.dtype) != c10::isFloatingType(want) || t.dtype == c10::kBool)
      throw UsageError(path + ": tensor \"" + item.key() + "\" holds " + c10::toString(t.dtype) + ", " + model +
                       " has " + c10::toString(want));
  }
  for (const auto& [name, tensor] : saved)
    if (!expected.contains(name))
      throw UsageError(path + ": tensor \"" + name + "\" has no place in " + model +
                       " (another architecture, width or variant?)");
}

std::string shape_text(c10::IntArrayRef shape) {
  std::string text;
  for (auto d : shape) text += (text.empty() ? "" : "x") + std::to_string(d);
  return text;
}

}  // namespace qrobust::io
