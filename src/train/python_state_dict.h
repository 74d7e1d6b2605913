#pragma once
// Reading a state dict written by Python's torch.save (the zip format of PyTorch >= 1.6), such
// as torchvision's pretrained weights, or by LibTorch's torch::pickle_save. LibTorch's own torch::pickle_load cannot read these up to
// 2.5: it turns the state dict's collections.OrderedDict into None (pytorch#100741). This is a
// small unpickler for exactly what a state dict holds: dicts, ordered dicts, tuples, lists,
// strings, numbers and tensors rebuilt from the archive's storages.
#include <torch/torch.h>

#include <map>
#include <string>

namespace qrobust::train {

// Name -> tensor (CPU). Throws RuntimeFailure naming the file when it is not a zip archive
// from torch.save, holds something other than a dict of tensors, or uses pickle features a
// state dict does not.
std::map<std::string, torch::Tensor> read_python_state_dict(const std::string& path);

}  // namespace qrobust::train
