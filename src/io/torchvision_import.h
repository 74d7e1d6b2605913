#pragma once
// Importing torchvision weights (`qrobust import-torchvision`): a state dict written by Python's
// torch.save (e.g. torchvision's resnet18-f37072fd.pth) becomes a qrobust checkpoint that
// `train.init_from` fine-tunes and `sweep-bits` quantizes. qrobust's ImageNet ResNets use
// torchvision's parameter names, so the import is one to one; every name and shape is checked.
#include <string>

namespace qrobust::io {

struct TorchvisionImport {
  std::string model;         // resnet18 | resnet34 | resnet50
  std::string state_dict;    // the .pth file
  std::string out;           // the qrobust checkpoint to write
  int64_t image_size = 224;  // input size recorded in the checkpoint (and its config)
};

struct ImportedWeights {
  int64_t width = 0;        // channels of the stem (torchvision: 64)
  int64_t num_classes = 0;  // rows of fc.weight
  int64_t tensors = 0;      // parameters and buffers copied
};

// Reads the state dict and writes the checkpoint (atomically). Throws UsageError naming the
// first tensor that is missing, unexpected or of another shape, RuntimeFailure when the file
// cannot be read as a state dict.
ImportedWeights import_torchvision(const TorchvisionImport& request);

}  // namespace qrobust::io
