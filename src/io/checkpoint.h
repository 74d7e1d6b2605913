#pragma once
// Checkpoints: one file holding the model's parameters and buffers, the SGD momentum buffers,
// the completed epoch count and the resolved config. Stored with torch::pickle_save as a plain
// dict of strings, ints and tensors, so Python reads it with torch.load(path). Written
// atomically: a kill leaves either the previous checkpoint or the new one. Read through
// io::TorchArchive, so a damaged or crafted file is a one-line error, never a crash: every
// field's type, every tensor's name, shape and bounds, and every momentum buffer's shape are
// checked, and the CRC-32 of every record read, before anything in the model changes.
#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "models/classifier.h"

namespace qrobust::io {

struct CheckpointInfo {
  std::string architecture;
  int64_t num_classes = 0;
  std::vector<int64_t> input_shape;  // C, H, W
  int64_t epoch = 0;                 // completed epochs
  std::string config_yaml;           // the resolved config that produced it
};

void save_checkpoint(const std::string& path, const models::ClassifierImpl& model, const torch::optim::SGD* optimizer,
                     int64_t epoch, const std::string& config_yaml);

// Reads only the descriptive fields.
CheckpointInfo read_checkpoint_info(const std::string& path);

// Loads weights (and momentum buffers, if `optimizer` is given) into `model`. Throws
// UsageError when the checkpoint was made for another architecture, class count or input
// shape, or when any tensor's name or shape differs; RuntimeFailure when the file is
// unreadable, malformed or damaged. On a throw the model and optimizer are unchanged.
CheckpointInfo load_checkpoint(const std::string& path, models::ClassifierImpl& model, torch::optim::SGD* optimizer);

}  // namespace qrobust::io
