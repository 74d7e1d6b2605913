#pragma once
// The one reader of files PyTorch's serialization wrote: qrobust checkpoints (torch::pickle_save)
// and state dicts saved by Python's torch.save (PyTorch >= 1.6's zip format), such as
// torchvision's weights. LibTorch's torch::pickle_load is never used on a file: it does not check
// its stack (a 4-byte pickle crashes it) and cannot read an OrderedDict before 2.5 (pytorch#100741).
//
// An archive is <dir>/data.pkl plus a record <dir>/data/<key> per storage. Opening one reads the
// zip directory (io/zip_reader.h), unpickles data.pkl (io/pickle.h) and checks that every storage
// a tensor uses is a record holding exactly its elements. No tensor's bytes are read until
// load(), which a caller reaches after checking names and shapes, so a file claiming huge
// tensors costs nothing; every record read is checked against its CRC-32.
#include <torch/torch.h>

#include <map>
#include <string>

#include "io/pickle.h"
#include "io/zip_reader.h"

namespace qrobust::io {

class TorchArchive {
 public:
  // Throws RuntimeFailure naming the file when it is not such an archive or anything in it is
  // malformed or out of bounds.
  explicit TorchArchive(const std::string& path);

  const std::string& path() const { return zip_.path(); }
  const Value& root() const { return pickle_.root(); }
  // The tensor's elements as a contiguous CPU tensor of its own.
  torch::Tensor load(const TensorRef& tensor);

 private:
  ZipReader zip_;
  std::string prefix_;  // "<dir>/"
  Pickle pickle_;
  std::map<std::string, std::string> storages_;  // read so far, by key
};

// A dict (or OrderedDict) of name -> tensor, such as a state dict. Throws RuntimeFailure naming
// `path` and `what` otherwise.
std::map<std::string, TensorRef> tensor_dict(const Value& dict, const std::string& path, const std::string& what);

// `saved` holds exactly the names of `expected`, each with its shape and a dtype that converts
// to its dtype without loss of kind (float to float, integer to integer). Throws UsageError naming
// `path`, the tensor and `model` (what `expected` belongs to, e.g. "the model").
void check_tensors(const std::string& path, const torch::OrderedDict<std::string, torch::Tensor>& expected,
                   const std::map<std::string, TensorRef>& saved, const std::string& model);

// A tensor shape as errors print it, e.g. "64x3x7x7".
std::string shape_text(c10::IntArrayRef shape);

}  // namespace qrobust::io
