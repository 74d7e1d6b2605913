#pragma once
// Helpers shared by the tests: scratch directories and small generated data files.
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "config/config.h"

namespace qrobust::testing {

// A fresh empty directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void write_bytes(const std::string& path, const std::string& bytes);

// The fuzz harnesses' seed corpora are files the tests make: with QROBUST_FUZZ_CORPUS=DIR set
// (scripts/fuzz.sh sets it), `bytes` is also written to DIR/<harness>/ under a name from its hash.
void save_corpus_sample(const std::string& harness, const std::string& bytes);

// Learnable synthetic images: uniform noise whose brightness grows with the class.
// Returns uint8 N x C x H x W images and int64 labels in 0..9.
std::pair<torch::Tensor, torch::Tensor> synthetic_images(int64_t n, int64_t channels, int64_t size, uint64_t seed);

// Writes a cifar-10-batches-bin layout with `per_file` records in each of the six files.
void write_cifar10(const std::string& dir, int64_t per_file, uint64_t seed = 1);

// Writes {train,t10k}-{images-idx3,labels-idx1}-ubyte files (gzipped if `gzip`).
void write_idx(const std::string& dir, int64_t train, int64_t test, bool gzip, uint64_t seed = 1);

// Every model qrobust ships, with a narrow width that keeps tests fast (same structure).
struct ShippedModel {
  std::string name;
  int64_t small_width;
};
const std::vector<ShippedModel>& shipped_models();

// A shell command's exit code and its stdout and stderr together.
struct CommandResult {
  int exit_code;
  std::string output;
};
CommandResult run_command(const std::string& command);

// A small, fast experiment on the CIFAR files in `data_dir`: resnet8 of width 4.
config::ExperimentConfig tiny_config(const std::string& data_dir, int64_t epochs);

// tiny_config trained for `epochs` on 6 x 48 generated CIFAR images, after `adjust` changed
// its config (val split, calibration samples, ...): the config and the checkpoint.
struct TrainedTinyRun {
  TempDir data, runs;
  config::ExperimentConfig config;
  std::string checkpoint;
  explicit TrainedTinyRun(int64_t epochs, const std::function<void(config::ExperimentConfig&)>& adjust = {});
};

}  // namespace qrobust::testing
