#include "config/reference.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "config/config.h"

namespace qrobust::config {

namespace {

template <class E, size_t N>
std::string choices(const util::Names<E, N>& names) {
  std::string out;
  for (const auto& name : util::all_names(names)) out += (out.empty() ? "" : " | ") + name;
  return out;
}

// Where the keys a document holds are: dotted path -> its value as flow YAML, in document order.
void flatten(const YAML::Node& node, const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) {
  for (const auto& entry : node) {
    const std::string key = prefix + entry.first.as<std::string>();
    if (entry.second.IsMap()) {
      flatten(entry.second, key + ".", out);
    } else {
      YAML::Emitter value;
      value << YAML::Flow << entry.second;
      out.emplace_back(key, value.c_str());
    }
  }
}

std::vector<std::pair<std::string, std::string>> resolved_keys(const std::string& yaml_text) {
  std::vector<std::pair<std::string, std::string>> keys;
  flatten(YAML::Load(to_yaml(parse_config(yaml_text, "config.yaml"))), "", keys);
  return keys;
}

std::string parent_of(const std::string& key) {
  const auto dot = key.rfind('.');
  return dot == std::string::npos ? "" : key.substr(0, dot);
}

std::string leaf_of(const std::string& key) { return key.substr(key.rfind('.') + 1); }

}  // namespace

const std::vector<KeyDoc>& key_docs() {
  static const std::vector<KeyDoc> docs = [] {
    const std::string grad_norm = "regularizer.name grad_l1 or grad_l2";
    const std::string any_penalty = "regularizer.name other than none";
    const std::string weight_penalty = "regularizer.name dq_lipschitz or kurtosis";
    const std::string folder = "data.dataset imagefolder";
    const std::string adaround = "quant.rounding adaround";
    return std::vector<KeyDoc>{
        {"name", "the run's name (runs/<name>, result headers); default: the config file's name", ""},
        {"seed", "seeds initialization, data order, augmentation and calibration samples", ""},
        {"device", "auto | cpu | cuda | cuda:N (auto: CUDA when the build and the machine have it)", ""},
        {"threads", "CPU threads: auto (all cores) or a count; --threads overrides it", ""},
        {"data.dataset", choices(kDatasetNames), ""},
        {"data.root", "directory with the data set's files; the default depends on the data set", ""},
        {"data.batch_size", "training images per step (per process when data parallel)", ""},
        {"data.eval_batch_size", "images per evaluation batch", ""},
        {"data.val_size", "training images held out (seeded) as the val split; 0: none", ""},
        {"data.train_limit", "train on this many images only (0: all); imagefolder: a seeded random subset", ""},
        {"data.augment", "training augmentation: padded random crop + flip (imagefolder: RandomResizedCrop + flip)", ""},
        {"data.crop_padding", "zero padding of the random crop, in pixels (not for imagefolder)", ""},
        {"data.test_dir", "the test images' folder under root (root/train holds the training images)", folder},
        {"data.image_size", "S, the square network input", folder},
        {"data.resize", "evaluation: shorter side resized to this, then the center SxS crop (0: no resize)", folder},
        {"data.strict", "an unreadable image is an error instead of a counted, skipped warning", folder},
        {"data.workers", "decoding threads (0: one per core)", folder},
        {"model.name", "architecture: " + models::known_models_text(), ""},
        {"model.width", "channels of the first convolution (0: the architecture's own); the rest scale with it", ""},
        {"train.epochs", "length of the schedule, in epochs", ""},
        {"train.lr", "peak learning rate of SGD", ""},
        {"train.momentum", "SGD momentum", ""},
        {"train.nesterov", "Nesterov momentum", ""},
        {"train.weight_decay", "L2 weight decay on every parameter", ""},
        {"train.schedule", choices(kScheduleNames) + ", applied per step", ""},
        {"train.milestones", "multistep: epochs after which lr is multiplied by gamma", ""},
        {"train.gamma", "multistep: the factor at each milestone", ""},
        {"train.warmup_epochs", "linear warm-up from 0, in (fractional) epochs", ""},
        {"train.init_from", "checkpoint whose weights training starts from (fine-tuning); \"\": none", ""},
        {"train.stop_after", "stop after this many epochs of the schedule (0: run it all): a shared trunk", ""},
        {"train.branch_from", "continue another run's checkpoint (weights, momentum, epoch) to the schedule's end", ""},
        {"regularizer.name", "the penalty added to cross-entropy: " + choices(regularize::kPenaltyNames), ""},
        {"regularizer.lambda_w", "weight of the weight-gradient term", grad_norm},
        {"regularizer.lambda_a", "weight of the activation-gradient term", grad_norm},
        {"regularizer.method", "how the penalty is differentiated: " + choices(regularize::kGradientMethodNames), grad_norm},
        {"regularizer.fd_epsilon", "finite_difference step, relative to the mean |weight|", grad_norm},
        {"regularizer.every", "take the penalized step every k-th step, with lambda scaled by k", grad_norm},
        {"regularizer.subbatch", "double_backprop: the penalty on the batch's first m images (0: all)", grad_norm},
        {"regularizer.lambda", "weight of the penalty", weight_penalty},
        {"regularizer.kurtosis_target", "the kurtosis each layer's weights are pulled towards", "regularizer.name kurtosis"},
        {"regularizer.start_epoch", "penalize from this epoch on (0-based)", any_penalty},
        {"quant.weight_granularity", "one weight range per tensor or per output channel: " + choices(quant::kGranularityNames), ""},
        {"quant.weight_symmetric", "symmetric weight grid around 0", ""},
        {"quant.act_symmetric", "symmetric activation grid (a range >= 0 uses the unsigned grid either way)", ""},
        {"quant.weight_estimator", "weight range setting: " + choices(quant::kEstimatorNames), ""},
        {"quant.act_estimator", "activation range setting: " + choices(quant::kEstimatorNames), ""},
        {"quant.percentile", "the percentile estimator's percentile", ""},
        {"quant.first_last", "first and last layer and their inputs: " + choices(quant::kFirstLastNames), ""},
        {"quant.bn_fold", "fold batch norm into the preceding conv/linear before quantizing", ""},
        {"quant.calibration_samples", "training images (seeded, no augmentation) per calibration draw", ""},
        {"quant.equalize", "cross-layer equalization of ReLU-joined layer pairs (needs bn_fold)", ""},
        {"quant.bias_correction", "after rounding: " + choices(quant::kBiasCorrectionNames), ""},
        {"quant.rounding", "weight rounding: " + choices(quant::kRoundingNames), ""},
        {"quant.adaround.iterations", "Adam steps per layer", adaround},
        {"quant.adaround.batch_size", "calibration images per Adam step", adaround},
        {"quant.adaround.lambda", "weight of the rounding regularizer", adaround},
        {"quant.adaround.learning_rate", "Adam's learning rate on V", adaround},
        {"quant_aware.weight_bits", "quantization-aware (STE) training at these weight bits (32: float)", ""},
        {"quant_aware.act_bits", "... and activation bits; both 32: off", ""},
        {"mixed_precision.criteria", "how `qrobust mixed-precision` predicts each element's damage: " +
                                         choices(mixed_precision::kCriterionNames), ""},
        {"mixed_precision.weight_bits", "candidate bit-widths of every layer's weights (32: float)", ""},
        {"mixed_precision.act_bits", "candidate bit-widths of every activation point (32: float)", ""},
        {"mixed_precision.axis", "what a budget limits: weight size or bit operations: " +
                                     choices(mixed_precision::kBudgetAxisNames), ""},
        {"mixed_precision.budgets", "average bits per weight (size), or weight x activation bits per MAC (bops)", ""},
        {"mixed_precision.score_images", "val images the criteria score elements on", ""},
        {"mixed_precision.hutchinson_samples", "Rademacher probes per batch of the hessian_trace criterion", ""},
    };
  }();
  return docs;
}

const std::vector<std::string>& showcase_configs() {
  static const std::vector<std::string> configs{
      "{}",
      "data: {dataset: imagefolder}",
      "regularizer: {name: grad_l1}",
      "regularizer: {name: kurtosis}",
      "quant: {rounding: adaround}",
  };
  return configs;
}

std::string annotated_defaults() {
  // Every key with the value of the first showcase config that holds it.
  std::map<std::string, std::string> values;
  for (const auto& text : showcase_configs())
    for (const auto& [key, value] : resolved_keys(text)) values.emplace(key, value);
  const auto defaults = resolved_keys(showcase_configs().front());
  std::set<std::string> in_defaults;
  for (const auto& entry : defaults) in_defaults.insert(entry.first);

  std::ostringstream out;
  auto line = [&](const std::string& text, const std::string& meaning) {
    out << text;
    if (text.size() < 40) out << std::string(40 - text.size(), ' ');
    out << "  # " << meaning << "\n";
  };
  auto indent = [](const std::string& key) {
    return std::string(2 * static_cast<size_t>(std::count(key.begin(), key.end(), '.')), ' ');
  };
  // The keys of a section that other settings bring in, commented out, after its last key.
  auto conditional_keys = [&](const std::string& section) {
    std::string opened;  // the nested map whose heading was written last
    for (const auto& doc : key_docs()) {
      if (in_defaults.count(doc.key) || doc.key.rfind(section + ".", 0) != 0) continue;
      const std::string parent = parent_of(doc.key);
      if (parent != section && parent != opened) {
        out << indent(parent) << "# " << leaf_of(parent) << ":\n";
        opened = parent;
      }
      line(indent(doc.key) + "# " + leaf_of(doc.key) + ": " + values.at(doc.key), doc.meaning + " (with " + doc.when + ")");
    }
  };
  out << "# Every key of a qrobust config with its default (qrobust config --defaults). Keys that\n"
         "# another setting brings in are commented out, with the setting they need.\n";
  std::string section;
  for (const auto& [key, value] : defaults) {
    const std::string parent = parent_of(key);
    if (parent != section) {
      if (!section.empty()) conditional_keys(section);
      if (!parent.empty()) out << parent << ":\n";
      section = parent;
    }
    const auto doc = std::find_if(key_docs().begin(), key_docs().end(), [&](const KeyDoc& d) { return d.key == key; });
    if (doc == key_docs().end()) throw std::logic_error("config key " + key + " has no entry in key_docs()");
    line(indent(key) + leaf_of(key) + ": " + value, doc->meaning);
  }
  if (!section.empty()) conditional_keys(section);
  return out.str();
}

}  // namespace qrobust::config
