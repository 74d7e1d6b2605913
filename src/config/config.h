#pragma once
// An experiment's configuration: YAML file (+ --set overrides) -> validated, typed structs,
// and back to YAML (the resolved config written into every run directory and checkpoint).
// Relative paths in a config are relative to the working directory.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/mixed_precision_settings.h"
#include "config/quant_settings.h"
#include "config/regularizer_settings.h"
#include "config/yaml_reader.h"
#include "models/registry.h"

namespace qrobust::config {

enum class Dataset { kCifar10, kFashionMnist, kMnist, kImageFolder };
inline constexpr util::Names<Dataset, 4> kDatasetNames{{{Dataset::kCifar10, "cifar10"},
                                                         {Dataset::kFashionMnist, "fashion_mnist"},
                                                         {Dataset::kMnist, "mnist"},
                                                         {Dataset::kImageFolder, "imagefolder"}}};

enum class Schedule { kCosine, kMultistep, kConstant };
inline constexpr util::Names<Schedule, 3> kScheduleNames{
    {{Schedule::kCosine, "cosine"}, {Schedule::kMultistep, "multistep"}, {Schedule::kConstant, "constant"}}};

struct DataConfig {
  Dataset dataset = Dataset::kCifar10;
  std::string root;                 // directory with the data set's files; "" resolves to its default
  int64_t batch_size = 128;
  int64_t eval_batch_size = 500;
  int64_t val_size = 0;     // training images held out (seeded) as a validation split
  int64_t train_limit = 0;  // use only the first this many training images (0: all), for quick runs;
                            // imagefolder (files grouped by class): a seeded random subset
  bool augment = true;      // training: random crop + horizontal flip (imagefolder: RandomResizedCrop)
  int64_t crop_padding = 4;  // cifar10 / mnist: zero padding of the random crop
  // imagefolder only (data/image_folder.h): <root>/train and <root>/<test_dir>.
  std::string test_dir = "val";
  int64_t image_size = 224;  // network input S x S
  int64_t resize = 256;      // evaluation: shorter side before the center crop (0: no resize)
  bool strict = false;       // an unreadable image is an error instead of a counted, skipped warning
  int64_t workers = 0;       // decoding threads; 0: one per core
};

struct TrainConfig {
  int64_t epochs = 1;
  double lr = 0.1;
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 5e-4;
  Schedule schedule = Schedule::kCosine;
  std::vector<int64_t> milestones;  // multistep: epochs after which lr is multiplied by gamma
  double gamma = 0.1;
  double warmup_epochs = 0;  // linear warm-up from 0, counted in (fractional) epochs
  std::string init_from;     // checkpoint to start from (fine-tuning); its optimizer state is not used
  // Stop after this many epochs of the `epochs`-long schedule (0: train them all): a shared
  // baseline that variants branch from late in one schedule.
  int64_t stop_after = 0;
  // Continue another run's checkpoint (weights, SGD momentum, epoch count) to the end of the
  // same schedule, in a new run directory; excludes init_from.
  std::string branch_from;

  int64_t last_epoch() const { return stop_after > 0 ? stop_after : epochs; }
};

// Quantization-aware training with the straight-through estimator (quant/quant_aware.h): the
// paper's STE baseline. Bits 32 mean float; both 32 (the default) means off.
struct QuantAwareConfig {
  int64_t weight_bits = 32;
  int64_t act_bits = 32;

  bool enabled() const { return weight_bits != 32 || act_bits != 32; }
};

struct ExperimentConfig {
  std::string name;
  int64_t seed = 0;
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  int64_t threads = 0;          // 0 = "auto": all cores
  DataConfig data;
  models::ModelOptions model;
  TrainConfig train;
  RegularizerSettings regularizer;  // the penalty added to cross-entropy (regularize/regularizer.h)
  QuantSettings quant;  // post-training quantization (quant/); also the quantizers quant_aware trains with
  QuantAwareConfig quant_aware;
  MixedPrecisionSettings mixed_precision;  // per-layer bit allocation under a budget (mixed_precision/)
};

// Reads and validates `path`, applying "key.path=value" overrides first.
ExperimentConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from text; `source` names it in errors.
ExperimentConfig parse_config(const std::string& yaml_text, const std::string& source,
                              const std::vector<std::string>& overrides = {});

// Every field, defaults resolved; parse_config(to_yaml(c)) == c.
std::string to_yaml(const ExperimentConfig& config);

// Where a data set lives when data.root is not given.
std::string default_data_root(Dataset dataset);

}  // namespace qrobust::config
