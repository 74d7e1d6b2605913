#include "config/config.h"

#include <filesystem>
#include <regex>

#include "models/registry.h"
#include "util/atomic_file.h"

namespace qrobust::config {

namespace {

// Sane upper bounds: a typo such as 100000 threads or a 2^63 batch is a config error, not a hang.
constexpr int64_t kMaxThreads = 1024;
constexpr int64_t kMaxBatch = 1 << 16;

void require(bool ok, YamlSection& section, const std::string& key, const std::string& message) {
  if (!ok) section.fail(key, message);
}

DataConfig read_data(YamlSection s) {
  DataConfig d;
  d.dataset = s.choice("dataset", d.dataset, kDatasetNames);
  d.root = s.text("root", default_data_root(d.dataset));
  d.batch_size = s.integer("batch_size", d.batch_size);
  require(d.batch_size >= 2 && d.batch_size <= kMaxBatch, s, "batch_size",
          "must be 2.." + std::to_string(kMaxBatch) + " (batch norm needs two samples), got " + std::to_string(d.batch_size));
  d.eval_batch_size = s.integer("eval_batch_size", d.eval_batch_size);
  require(d.eval_batch_size >= 1 && d.eval_batch_size <= kMaxBatch, s, "eval_batch_size",
          "must be 1.." + std::to_string(kMaxBatch) + ", got " + std::to_string(d.eval_batch_size));
  d.val_size = s.integer("val_size", d.val_size);
  require(d.val_size >= 0, s, "val_size", "must be >= 0, got " + std::to_string(d.val_size));
  d.train_limit = s.integer("train_limit", d.train_limit);
  require(d.train_limit >= 0, s, "train_limit", "must be >= 0, got " + std::to_string(d.train_limit));
  d.augment = s.boolean("augment", d.augment);
  const bool folder = d.dataset == Dataset::kImageFolder;
  for (const char* key : {"test_dir", "image_size", "resize", "strict", "workers"})
    require(folder || !s.has(key), s, key, "applies only to dataset imagefolder");
  require(!folder || !s.has("crop_padding"), s, "crop_padding", "does not apply to dataset imagefolder (it uses RandomResizedCrop)");
  if (folder) {
    d.test_dir = s.text("test_dir", d.test_dir);
    require(!d.test_dir.empty() && d.test_dir != "train", s, "test_dir", "must name a folder other than train");
    d.image_size = s.integer("image_size", d.image_size);
    require(d.image_size >= 8, s, "image_size", "must be at least 8, got " + std::to_string(d.image_size));
    d.resize = s.integer("resize", d.resize);
    require(d.resize == 0 || d.resize >= d.image_size, s, "resize",
            "must be 0 (no resize) or at least image_size (" + std::to_string(d.image_size) + "), got " + std::to_string(d.resize));
    d.strict = s.boolean("strict", d.strict);
    d.workers = s.integer("workers", d.workers);
    require(d.workers >= 0, s, "workers", "must be >= 0 (0: one per core), got " + std::to_string(d.workers));
  } else {
    d.crop_padding = s.integer("crop_padding", d.crop_padding);
    require(d.crop_padding >= 0 && d.crop_padding <= 16, s, "crop_padding", "must be in 0..16, got " + std::to_string(d.crop_padding));
  }
  s.finish();
  return d;
}

models::ModelOptions read_model(YamlSection s) {
  models::ModelOptions m;
  m.name(s.text("name", m.name()));
  require(models::is_known_model(m.name()), s, "name",
          "unknown model \"" + m.name() + "\" (known: " + models::known_models_text() + ")");
  m.width(s.integer("width", m.width()));
  require(m.width() >= 0 && m.width() <= 4096, s, "width", "must be in 0..4096, got " + std::to_string(m.width()));
  s.finish();
  return m;
}

TrainConfig read_train(YamlSection s) {
  TrainConfig t;
  t.epochs = s.integer("epochs", t.epochs);
  require(t.epochs >= 1, s, "epochs", "must be at least 1, got " + std::to_string(t.epochs));
  t.lr = s.number("lr", t.lr);
  require(t.lr > 0, s, "lr", "must be > 0, got " + number_text(t.lr));
  t.momentum = s.number("momentum", t.momentum);
  require(t.momentum >= 0 && t.momentum < 1, s, "momentum", "must be in [0, 1), got " + number_text(t.momentum));
  t.nesterov = s.boolean("nesterov", t.nesterov);
  require(!t.nesterov || t.momentum > 0, s, "nesterov", "needs momentum > 0");
  t.weight_decay = s.number("weight_decay", t.weight_decay);
  require(t.weight_decay >= 0, s, "weight_decay", "must be >= 0, got " + number_text(t.weight_decay));
  t.schedule = s.choice("schedule", t.schedule, kScheduleNames);
  t.milestones = s.integers("milestones", t.milestones);
  if (t.schedule == Schedule::kMultistep) require(!t.milestones.empty(), s, "milestones", "multistep needs at least one milestone");
  for (size_t i = 0; i < t.milestones.size(); ++i) {
    require(t.milestones[i] > 0 && t.milestones[i] <= t.epochs, s, "milestones",
            "each milestone must be in 1..epochs (" + std::to_string(t.epochs) + "), got " + std::to_string(t.milestones[i]));
    require(i == 0 || t.milestones[i] > t.milestones[i - 1], s, "milestones", "must be increasing");
  }
  t.gamma = s.number("gamma", t.gamma);
  require(t.gamma > 0, s, "gamma", "must be > 0, got " + number_text(t.gamma));
  t.warmup_epochs = s.number("warmup_epochs", t.warmup_epochs);
  require(t.warmup_epochs >= 0 && t.warmup_epochs < static_cast<double>(t.epochs), s, "warmup_epochs",
          "must be in [0, epochs), got " + number_text(t.warmup_epochs));
  t.init_from = s.text("init_from", t.init_from);
  t.stop_after = s.integer("stop_after", t.stop_after);
  require(t.stop_after >= 0 && t.stop_after <= t.epochs, s, "stop_after",
          "must be in 0..epochs (" + std::to_string(t.epochs) + "), got " + std::to_string(t.stop_after));
  t.branch_from = s.text("branch_from", t.branch_from);
  if (!t.branch_from.empty() && !t.init_from.empty())
    s.fail("branch_from", "continues a run's schedule and momentum; it cannot be combined with init_from");
  s.finish();
  return t;
}

QuantAwareConfig read_quant_aware(YamlSection s, const regularize::RegularizerOptions& regularizer) {
  QuantAwareConfig qa;
  for (auto [key, value] : {std::pair<const char*, int64_t*>{"weight_bits", &qa.weight_bits}, {"act_bits", &qa.act_bits}}) {
    *value = s.integer(key, *value);
    require((*value >= 2 && *value <= 16) || *value == 32, s, key,
            "must be 2..16, or 32 for float, got " + std::to_string(*value));
  }
  // The finite-difference step shifts the float weights between its two passes, but the
  // quantized weights a quantization-aware step trains through are computed once per step, so
  // its second pass would not see the shift (and would backpropagate through a freed graph).
  if (qa.enabled() && regularizer.is_gradient_norm() && regularizer.method() == regularize::GradientMethod::kFiniteDifference)
    s.fail("weight_bits", "quantization-aware training cannot be combined with regularizer.method finite_difference "
                          "(use double_backprop)");
  // The same holds for the second forward pass of a sub-batch penalty.
  if (qa.enabled() && regularizer.is_gradient_norm() && regularizer.subbatch() > 0)
    s.fail("weight_bits", "quantization-aware training cannot be combined with regularizer.subbatch");
  s.finish();
  return qa;
}

}  // namespace

std::string default_data_root(Dataset dataset) {
  switch (dataset) {
    case Dataset::kFashionMnist: return "/usr/share/datasets/fashion-mnist";
    case Dataset::kMnist: return "data/mnist";
    case Dataset::kImageFolder: return "data/imagenet";
    case Dataset::kCifar10: break;
  }
  return "data/cifar-10-batches-bin";
}

ExperimentConfig parse_config(const std::string& yaml_text, const std::string& source,
                              const std::vector<std::string>& overrides) {
  YAML::Node root = parse_yaml(yaml_text, source);
  auto origin = std::make_shared<YamlOrigin>();
  origin->file = source;
  for (const auto& assignment : overrides) apply_override(root, assignment, *origin);

  YamlSection s(root, "", origin);
  ExperimentConfig c;
  c.name = s.text("name", std::filesystem::path(source).stem().string());
  require(!c.name.empty() && c.name.find('/') == std::string::npos, s, "name",
          "must be a non-empty name without '/', got \"" + c.name + "\"");
  c.seed = s.integer("seed", c.seed);
  require(c.seed >= 0, s, "seed", "must be >= 0, got " + std::to_string(c.seed));
  c.device = s.text("device", c.device);
  static const std::regex device_pattern("auto|cpu|cuda(:[0-9]+)?");
  require(std::regex_match(c.device, device_pattern), s, "device",
          "expected auto, cpu, cuda or cuda:N, got \"" + c.device + "\"");
  if (s.has("threads") && s.text("threads", "") != "auto") {
    c.threads = s.integer("threads", 0);
    require(c.threads >= 1 && c.threads <= kMaxThreads, s, "threads",
            "expected auto or 1.." + std::to_string(kMaxThreads) + ", got " + std::to_string(c.threads));
  }
  c.data = read_data(s.section("data"));
  c.model = read_model(s.section("model"));
  c.train = read_train(s.section("train"));
  c.regularizer = RegularizerSettings::read(s.section("regularizer"), c.train.epochs, c.data.batch_size);
  c.quant = QuantSettings::read(s.section("quant"));
  c.quant_aware = read_quant_aware(s.section("quant_aware"), c.regularizer);
  c.mixed_precision = MixedPrecisionSettings::read(s.section("mixed_precision"));
  s.finish();
  return c;
}

ExperimentConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (!std::filesystem::is_regular_file(path)) throw ConfigError(path + ": config file not found");
  return parse_config(util::read_file(path, util::kMaxTextFileBytes), path, overrides);
}

std::string to_yaml(const ExperimentConfig& c) {
  YAML::Emitter out;
  out.SetDoublePrecision(15);  // shortest text for values typed in a config; stable under re-parsing
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << c.name;
  out << YAML::Key << "seed" << YAML::Value << c.seed;
  out << YAML::Key << "device" << YAML::Value << c.device;
  out << YAML::Key << "threads" << YAML::Value;
  if (c.threads == 0) out << "auto"; else out << c.threads;
  out << YAML::Key << "data" << YAML::Value << YAML::BeginMap
      << YAML::Key << "dataset" << YAML::Value << util::name_of(c.data.dataset, kDatasetNames)
      << YAML::Key << "root" << YAML::Value << c.data.root
      << YAML::Key << "batch_size" << YAML::Value << c.data.batch_size
      << YAML::Key << "eval_batch_size" << YAML::Value << c.data.eval_batch_size
      << YAML::Key << "val_size" << YAML::Value << c.data.val_size
      << YAML::Key << "train_limit" << YAML::Value << c.data.train_limit
      << YAML::Key << "augment" << YAML::Value << c.data.augment;
  if (c.data.dataset == Dataset::kImageFolder) {
    out << YAML::Key << "test_dir" << YAML::Value << c.data.test_dir
        << YAML::Key << "image_size" << YAML::Value << c.data.image_size
        << YAML::Key << "resize" << YAML::Value << c.data.resize
        << YAML::Key << "strict" << YAML::Value << c.data.strict
        << YAML::Key << "workers" << YAML::Value << c.data.workers;
  } else {
    out << YAML::Key << "crop_padding" << YAML::Value << c.data.crop_padding;
  }
  out << YAML::EndMap;
  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap
      << YAML::Key << "name" << YAML::Value << c.model.name()
      << YAML::Key << "width" << YAML::Value << c.model.width() << YAML::EndMap;
  out << YAML::Key << "train" << YAML::Value << YAML::BeginMap
      << YAML::Key << "epochs" << YAML::Value << c.train.epochs
      << YAML::Key << "lr" << YAML::Value << c.train.lr
      << YAML::Key << "momentum" << YAML::Value << c.train.momentum
      << YAML::Key << "nesterov" << YAML::Value << c.train.nesterov
      << YAML::Key << "weight_decay" << YAML::Value << c.train.weight_decay
      << YAML::Key << "schedule" << YAML::Value << util::name_of(c.train.schedule, kScheduleNames)
      << YAML::Key << "milestones" << YAML::Value << YAML::Flow << c.train.milestones
      << YAML::Key << "gamma" << YAML::Value << c.train.gamma
      << YAML::Key << "warmup_epochs" << YAML::Value << c.train.warmup_epochs
      << YAML::Key << "init_from" << YAML::Value << c.train.init_from << YAML::Key << "stop_after" << YAML::Value
      << c.train.stop_after << YAML::Key << "branch_from" << YAML::Value << c.train.branch_from << YAML::EndMap;
  out << YAML::Key << "regularizer" << YAML::Value;
  c.regularizer.write(out);
  out << YAML::Key << "quant" << YAML::Value;
  c.quant.write(out);
  out << YAML::Key << "quant_aware" << YAML::Value << YAML::BeginMap
      << YAML::Key << "weight_bits" << YAML::Value << c.quant_aware.weight_bits
      << YAML::Key << "act_bits" << YAML::Value << c.quant_aware.act_bits << YAML::EndMap;
  out << YAML::Key << "mixed_precision" << YAML::Value;
  c.mixed_precision.write(out);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace qrobust::config
