#include "bench/bench.h"

#include <malloc.h>
#include <torch/torch.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/config.h"
#include "data/batches.h"
#include "data/datasets.h"
#include "data/image_folder.h"
#include "data/jpeg.h"
#include "evaluation/evaluate.h"
#include "models/layer_ops.h"
#include "models/registry.h"
#include "regularize/regularizer.h"
#include "sweep/sweep.h"
#include "util/errors.h"
#include "util/provenance.h"
#include "util/runtime.h"

namespace qrobust::bench {
namespace {

// Seconds per call of `step`, averaged over `steps` calls after `warmup` untimed ones.
template <class Step>
double seconds_per_step(int64_t warmup, int64_t steps, Step&& step) {
  for (int64_t i = 0; i < warmup; ++i) step();
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) step();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / static_cast<double>(steps);
}

// A field of /proc/self/status in bytes (VmRSS: resident now, VmHWM: peak resident).
int64_t status_bytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string key;
  int64_t kilobytes = 0;
  while (status >> key) {
    if (key == field + ":") {
      status >> kilobytes;
      return kilobytes * 1024;
    }
    status.ignore(4096, '\n');
  }
  return 0;
}

// Peak resident memory of one phase above what was resident when it started. Freed heap is
// returned to the OS first and the kernel's high-water mark reset (Linux >= 4.0), so phases
// run one after another in one process are measured independently.
struct MemoryWindow {
  int64_t start_bytes;
  MemoryWindow() {
    malloc_trim(0);
    start_bytes = status_bytes("VmRSS");
    std::ofstream("/proc/self/clear_refs") << "5";
  }
  nlohmann::json result() const {
    const int64_t peak = status_bytes("VmHWM");
    return {{"peak_rss_bytes", peak}, {"step_memory_bytes", peak - start_bytes}};
  }
};

// The median of `values` (sorted in place).
double median(std::vector<double>& values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

regularize::RegularizerOptions amortized_regularizer(const regularize::RegularizerOptions& regularizer,
                                                    const std::string& spec, int64_t batch) {
  auto fail = [&](const std::string& message) { throw UsageError("--amortized " + spec + ": " + message); };
  if (!regularizer.is_gradient_norm()) fail("applies to --regularizer grad_l1 or grad_l2");
  regularize::RegularizerOptions out = regularizer;
  std::stringstream items(spec);
  std::string item;
  while (std::getline(items, item, ',')) {
    const auto equals = item.find('=');
    if (equals == std::string::npos) fail("expected key=value, got \"" + item + "\"");
    const std::string key = item.substr(0, equals), value = item.substr(equals + 1);
    auto integer = [&](int64_t low, int64_t high) {
      int64_t parsed = 0;
      const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
      if (error != std::errc() || end != value.data() + value.size() || parsed < low || parsed > high)
        fail(key + " must be an integer in " + std::to_string(low) + ".." + std::to_string(high) + ", got \"" + value + "\"");
      return parsed;
    };
    if (key == "every") {
      out.every(integer(1, 1000));
    } else if (key == "subbatch") {
      out.subbatch(integer(2, batch - 1));
    } else if (key == "method") {
      const auto method = util::value_of(value, regularize::kGradientMethodNames);
      if (!method) fail("method must be double_backprop or finite_difference, got \"" + value + "\"");
      out.method(*method);
    } else {
      fail("unknown key \"" + key + "\" (known: every, subbatch, method)");
    }
  }
  if (out.subbatch() > 0 && out.method() != regularize::GradientMethod::kDoubleBackprop)
    fail("subbatch applies to method double_backprop");
  return out;
}

nlohmann::json run_benchmark(const BenchOptions& options) {
  if (options.batch < 2) throw UsageError("--batch: must be at least 2, got " + std::to_string(options.batch));
  if (options.steps < 1) throw UsageError("--steps: must be at least 1, got " + std::to_string(options.steps));
  if (options.alternate_rounds < 0)
    throw UsageError("--alternate: must be 0 or more, got " + std::to_string(options.alternate_rounds));
  if (!options.amortized.empty() && options.alternate_rounds == 0)
    throw UsageError("--amortized: the amortized steps are timed in alternating rounds; give --alternate N");
  if (options.compare_channels_last && (options.alternate_rounds == 0 || options.regularizer.penalty() == regularize::Penalty::kNone))
    throw UsageError("--compare-channels-last: times the plain and the penalized step in alternating rounds; give --regularizer and --alternate N");
  std::vector<regularize::RegularizerOptions> amortized;
  for (const auto& spec : options.amortized) amortized.push_back(amortized_regularizer(options.regularizer, spec, options.batch));
  if (!models::is_known_model(options.model))
    throw UsageError("--model: unknown model \"" + options.model + "\" (known: " + models::known_models_text() + ")");
  const torch::Device device = util::resolve_device(options.device);
  const int threads = at::get_num_threads();
  auto model = models::build_model(models::ModelOptions().name(options.model), {3, 32, 32, 10}, 0, device);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9).weight_decay(5e-4));
  auto generator = at::detail::createCPUGenerator(0);
  const auto images = torch::randn({options.batch, 3, 32, 32}, generator).to(device);
  torch::Tensor step_images = images;  // what the training steps read: `images`, or its channels-last copy
  const auto targets = torch::randint(0, 10, {options.batch}, generator, torch::kLong).to(device);
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  const auto batch = static_cast<double>(options.batch);
  // Seconds per training step with the given regularizer, over whole cycles of `every` steps,
  // and how many of the timed steps paid a penalty (the work an amortized option skips).
  struct TimedSteps {
    double seconds_per_step;
    int64_t steps;
    int64_t penalized_steps;
  };
  auto time_steps = [&](regularize::Regularizer& regularizer, int64_t warmup, int64_t every = 1) {
    regularizer.begin_epoch();
    int64_t penalized_steps = 0;
    auto step = [&] {
      optimizer.zero_grad();
      if (regularizer.step(*model, step_images, targets).penalty != 0) ++penalized_steps;
      optimizer.step();
      sync();
    };
    for (int64_t i = 0; i < warmup; ++i) step();
    penalized_steps = 0;
    const int64_t steps = (options.steps + every - 1) / every * every;
    const double seconds = seconds_per_step(0, steps, step);
    return TimedSteps{seconds, steps, penalized_steps};
  };
  auto train_seconds = [&](regularize::Regularizer& regularizer, int64_t warmup, int64_t every = 1) {
    return time_steps(regularizer, warmup, every).seconds_per_step;
  };
  // One timed phase of training steps with the given regularizer.
  auto train_phase = [&](regularize::Regularizer& regularizer) {
    model->train();
    MemoryWindow memory;
    const auto timed = time_steps(regularizer, options.warmup_steps);
    auto result = memory.result();
    result["step_seconds"] = timed.seconds_per_step;
    result["images_per_second"] = batch / timed.seconds_per_step;
    result["timed_steps"] = timed.steps;
    result["penalized_steps"] = timed.penalized_steps;
    return result;
  };

  nlohmann::json out = {{"model", options.model},
                        {"batch", options.batch},
                        {"steps", options.steps},
                        {"threads", threads},
                        {"device", device.str()},
                        {"blas", util::loaded_blas_library()}};
  const auto plain = regularize::make_plain();
  out["plain"] = train_phase(*plain);
  out["train_images_per_second"] = out["plain"]["images_per_second"];
  if (options.regularizer.penalty() != regularize::Penalty::kNone) {
    const auto penalized = regularize::make_regularizer(options.regularizer);
    out["penalized"] = train_phase(*penalized);
    out["penalized"]["regularizer"] = util::name_of(options.regularizer.penalty(), regularize::kPenaltyNames);
    out["penalized"]["method"] = util::name_of(options.regularizer.method(), regularize::kGradientMethodNames);
    out["penalized"]["lambda_w"] = options.regularizer.lambda_w();
    out["penalized"]["lambda_a"] = options.regularizer.lambda_a();
    out["penalized"]["lambda"] = options.regularizer.lambda();
    if (options.compare_layer_ops) {
      auto& libtorch = out["penalized_libtorch_layers"] = [&] {
        models::LibTorchLayerOpsGuard libtorch_ops;
        return train_phase(*penalized);
      }();
      libtorch["time_ratio"] = libtorch["step_seconds"].get<double>() / out["plain"]["step_seconds"].get<double>();
      libtorch["peak_rss_ratio"] = libtorch["peak_rss_bytes"].get<double>() / out["plain"]["peak_rss_bytes"].get<double>();
    }
    if (options.alternate_rounds > 0) {
      model->train();
      std::vector<std::unique_ptr<regularize::Regularizer>> cheap;
      for (const auto& config : amortized) {
        cheap.push_back(regularize::make_regularizer(config));
        train_seconds(*cheap.back(), options.warmup_steps, config.every());
      }
      // Runs `steps` with the weights and the batch channels-last, then restores the default layout.
      auto channels_last = [&](auto&& steps) {
        model->set_memory_format(c10::MemoryFormat::ChannelsLast);
        step_images = images.contiguous(c10::MemoryFormat::ChannelsLast);
        const auto result = steps();
        model->set_memory_format(c10::MemoryFormat::Contiguous);
        step_images = images;
        return result;
      };
      if (options.compare_channels_last) channels_last([&] { return train_seconds(*penalized, options.warmup_steps); });
      std::vector<double> ratios;
      std::vector<std::vector<double>> cheap_ratios(cheap.size());
      std::vector<TimedSteps> cheap_round(cheap.size());  // steps are the same in every round
      std::vector<double> plain_speedups, penalized_speedups, channels_last_ratios;
      for (int64_t round = 0; round < options.alternate_rounds; ++round) {
        const double plain_seconds = train_seconds(*plain, 0);
        const double penalized_seconds = train_seconds(*penalized, 0);
        ratios.push_back(penalized_seconds / plain_seconds);
        for (size_t i = 0; i < cheap.size(); ++i) {
          cheap_round[i] = time_steps(*cheap[i], 0, amortized[i].every());
          cheap_ratios[i].push_back(cheap_round[i].seconds_per_step / plain_seconds);
        }
        if (options.compare_channels_last) {
          const auto [plain_cl, penalized_cl] = channels_last([&] {
            const double plain_cl_seconds = train_seconds(*plain, 0);
            return std::pair(plain_cl_seconds, train_seconds(*penalized, 0));
          });
          plain_speedups.push_back(plain_seconds / plain_cl);
          penalized_speedups.push_back(penalized_seconds / penalized_cl);
          channels_last_ratios.push_back(penalized_cl / plain_cl);
        }
      }
      const double median_ratio = median(ratios);
      out["alternating"] = {{"rounds", options.alternate_rounds}, {"round_ratios", ratios}, {"median_time_ratio", median_ratio}};
      if (options.compare_channels_last)
        out["alternating"]["channels_last"] = {{"plain_speedup", median(plain_speedups)},
                                               {"penalized_speedup", median(penalized_speedups)},
                                               {"median_time_ratio", median(channels_last_ratios)}};
      for (size_t i = 0; i < cheap.size(); ++i) {
        const double cheap_median = median(cheap_ratios[i]);
        out["alternating"]["amortized"].push_back({{"amortized", options.amortized[i]},
                                                   {"every", amortized[i].every()},
                                                   {"subbatch", amortized[i].subbatch()},
                                                   {"method", util::name_of(amortized[i].method(), regularize::kGradientMethodNames)},
                                                   {"timed_steps", cheap_round[i].steps},
                                                   {"penalized_steps", cheap_round[i].penalized_steps},
                                                   {"round_ratios", cheap_ratios[i]},
                                                   {"median_time_ratio", cheap_median}});
      }
    }
    out["time_ratio"] = out["penalized"]["step_seconds"].get<double>() / out["plain"]["step_seconds"].get<double>();
    out["peak_rss_ratio"] =
        out["penalized"]["peak_rss_bytes"].get<double>() / out["plain"]["peak_rss_bytes"].get<double>();
    out["step_memory_ratio"] =
        out["penalized"]["step_memory_bytes"].get<double>() / out["plain"]["step_memory_bytes"].get<double>();
  }
  model->eval();
  const double inference_step = seconds_per_step(options.warmup_steps, options.steps, [&] {
    torch::NoGradGuard no_grad;
    model->forward(images);
    sync();
  });
  out["inference_images_per_second"] = batch / inference_step;
  out["provenance"] = util::provenance();
  return out;
}

nlohmann::json run_sweep_benchmark(const BenchOptions& options, const std::string& data_root) {
  config::ExperimentConfig config;
  config.model.name(options.model);
  config.data.dataset = config::Dataset::kCifar10;
  config.data.root = data_root;
  const torch::Device device = util::resolve_device(options.device);
  const int threads = at::get_num_threads();
  const auto splits = data::load_splits(config.data, config.seed);
  auto model = models::build_model(config.model, splits.info.input(), 0, device);
  model->eval();

  sweep::SweepOptions grid;  // the default 6 x 6 grid
  const auto configurations = static_cast<int64_t>(sweep::grid(grid).size());
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < configurations; ++i)
    evaluation::predict(*model, splits.test, splits.info, config.data.eval_batch_size, device);
  const double plain = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto sweep_start = std::chrono::steady_clock::now();
  sweep::sweep_model(*model, splits, config, grid, device);
  const double swept = std::chrono::duration<double>(std::chrono::steady_clock::now() - sweep_start).count();
  return {{"model", options.model},
          {"test_images", splits.test.size()},
          {"configurations", configurations},
          {"threads", threads},
          {"device", device.str()},
          {"plain_evaluations_seconds", plain},
          {"sweep_seconds", swept},
          {"ratio", swept / plain},
          {"provenance", util::provenance()}};
}

namespace {

// A 375 x 500 RGB image with natural-image statistics: random phases under a 1/f^1.25 amplitude
// spectrum (natural images: 1/f^1..1/f^1.5, Field 1987), the channels mostly shared as in photos. Its JPEG files have
// about the size of ImageNet's at quality 90.
torch::Tensor synthetic_photo(int64_t index) {
  auto generator = at::detail::createCPUGenerator(static_cast<uint64_t>(index) + 1);
  const int64_t height = 375, width = 500;
  const auto fy = torch::fft::fftfreq(height).view({height, 1});
  const auto fx = torch::fft::fftfreq(width).view({1, width});
  const auto amplitude = torch::pow(torch::sqrt(fy * fy + fx * fx) + 1.0 / width, -1.25);
  auto field = [&] {
    const auto phase = torch::rand({height, width}, generator) * 2 * M_PI;
    const auto spectrum = torch::polar(amplitude.to(torch::kFloat), phase.to(torch::kFloat));
    const auto image = torch::real(torch::fft::ifft2(spectrum));
    return (image - image.mean()) / image.std();
  };
  const auto shared = field();
  std::vector<torch::Tensor> channels;
  for (int c = 0; c < 3; ++c) channels.push_back(128 + 50 * (0.9 * shared + 0.44 * field()));
  return torch::stack(channels, 2).round().clamp(0, 255).to(torch::kUInt8);
}

}  // namespace

nlohmann::json run_decode_benchmark(const std::string& folder, int64_t images) {
  namespace fs = std::filesystem;
  const fs::path train_dir = fs::path(folder) / "train";
  if (!fs::exists(train_dir)) {
    for (int64_t i = 0; i < images; ++i) {
      const fs::path dir = train_dir / ("class_" + std::to_string(i % 10));
      fs::create_directories(dir);
      std::ofstream(dir / (std::to_string(i) + ".jpg"), std::ios::binary) << data::encode_jpeg(synthetic_photo(i), 90);
    }
  }
  config::DataConfig data_config;  // the defaults: 224 px, resize 256, ImageNet normalization
  data_config.dataset = config::Dataset::kImageFolder;
  data_config.root = folder;
  const auto info = data::dataset_info(data_config);
  const auto options =
      data::ImageFolderOptions().image_size(data_config.image_size).resize(data_config.resize).workers(0);
  data::ImageFolder dataset(folder, "train", options);
  const data::LabeledImages split{torch::Tensor(), dataset.targets(), dataset.files()};
  int64_t bytes = 0;
  for (int64_t i = 0; i < dataset.files()->size(); ++i) bytes += static_cast<int64_t>(fs::file_size(dataset.files()->path(i)));

  // Three passes over the files (after one warm-up batch), as the reference script does.
  auto images_per_second = [&](bool augment) {
    data::BatchOptions batch_options;
    batch_options.batch_size = 32;
    batch_options.augment = augment;
    batch_options.shuffle = augment;
    data::EpochBatches(split, info, batch_options, 0, torch::kCPU).get(0);  // page cache, allocator
    const auto start = std::chrono::steady_clock::now();
    int64_t count = 0;
    for (uint64_t pass = 1; pass <= 3; ++pass) {
      data::EpochBatches batches(split, info, batch_options, pass, torch::kCPU);
      for (int64_t b = 0; b < batches.size(); ++b) count += batches.get(b).targets.size(0);
    }
    return static_cast<double>(count) /
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const double train = images_per_second(true), eval = images_per_second(false);
  return {{"benchmark", "jpeg_decode"},
          {"folder", folder},
          {"images", dataset.files()->size()},
          {"mean_file_bytes", bytes / std::max<int64_t>(1, dataset.files()->size())},
          {"threads", at::get_num_threads()},
          {"train_transform_images_per_second", train},
          {"eval_transform_images_per_second", eval},
          {"provenance", util::provenance()}};
}

}  // namespace qrobust::bench
