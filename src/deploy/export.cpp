#include "deploy/export.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>

#include "data/batches.h"
#include "deploy/torch_export.h"
#include "io/checkpoint.h"
#include "models/registry.h"
#include "quant/bit_plan_file.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/runtime.h"

namespace qrobust::deploy {
namespace {

// The plan a request names, for `model` (whose layers and points it must fit).
quant::BitPlan requested_plan(const ExportRequest& request, const config::ExperimentConfig& config,
                              const models::ClassifierImpl& model) {
  if (!request.plan_path.empty()) return quant::read_bit_plan(request.plan_path, model);
  return quant::uniform_plan(model, config.quant.first_last(), request.weight_bits, request.act_bits);
}

void write_raw(const std::string& path, const torch::Tensor& values) {
  const auto contiguous = values.contiguous();
  util::commit_atomically(path, [&](const std::string& temporary) {
    std::ofstream out(temporary, std::ios::binary);
    out.write(static_cast<const char*>(contiguous.data_ptr()), static_cast<std::streamsize>(contiguous.nbytes()));
    if (!out) throw RuntimeFailure(path + ": cannot write");
  });
}

// The split's images as the model sees them and the model's logits under `plan`, `draw`.
nlohmann::json write_reference(quant::PostTrainingQuantizer& quantizer, const quant::BitPlan& plan, size_t draw,
                               const data::DataSplits& splits, const ExportRequest& request, int64_t batch_size,
                               torch::Device device) {
  const auto& split = splits[request.reference_split];
  auto& model = quantizer.model();
  model.eval();
  torch::NoGradGuard no_grad;
  data::BatchOptions options;
  options.batch_size = batch_size;
  data::EpochBatches batches(split, splits.info, options, 0, device);
  std::vector<torch::Tensor> images, labels, logits;
  {
    quant::QuantizedModelScope quantized(quantizer, plan, draw);
    for (int64_t i = 0; i < batches.size(); ++i) {
      const auto batch = batches.get(i);
      images.push_back(batch.images.to(torch::kCPU, torch::kFloat).contiguous());
      labels.push_back(batch.targets.to(torch::kCPU, torch::kInt));
      logits.push_back(model.forward(batch.images).to(torch::kCPU, torch::kFloat));
    }
  }
  const auto all_images = torch::cat(images), all_labels = torch::cat(labels), all_logits = torch::cat(logits);
  write_raw(request.reference + ".images", all_images);
  write_raw(request.reference + ".labels", all_labels);
  write_raw(request.reference + ".logits", all_logits);
  const double accuracy =
      100.0 * all_logits.argmax(1).eq(all_labels.to(torch::kLong)).to(torch::kDouble).mean().item<double>();
  nlohmann::json about = {{"split", data::split_name(request.reference_split)},
                          {"images", all_images.size(0)},
                          {"image_shape", std::vector<int64_t>(all_images.sizes().begin() + 1, all_images.sizes().end())},
                          {"classes", all_logits.size(1)},
                          {"accuracy", accuracy},
                          {"files", {{"images", request.reference + ".images"},
                                     {"labels", request.reference + ".labels"},
                                     {"logits", request.reference + ".logits"}}},
                          {"layout", "little-endian; images float32 N x C x H x W, labels int32, logits float32 N x classes"}};
  util::write_file_atomically(request.reference + ".json", about.dump(2) + "\n");
  return about;
}

}  // namespace

void check_request(const config::ExperimentConfig& config, const ExportRequest& request) {
  if (request.out.empty()) throw UsageError("export: --out FILE is required");
  if (request.draw < 0 || request.draw > kMaxDraw)
    throw UsageError("--draw " + std::to_string(request.draw) + ": no such calibration draw (they are numbered 0.." +
                     std::to_string(kMaxDraw) + ", as a sweep's --calibration-draws count them)");
  if (request.format == ExportFormat::kOnnx && !config.quant.bn_fold())
    throw UsageError("export: ONNX export writes BN-folded models; quant.bn_fold is false");
  if (request.plan_path.empty()) {
    quant::check_bits(request.weight_bits, "--weight-bits");
    quant::check_bits(request.act_bits, "--act-bits");
  }
  // The plan is checked against the architecture before any weights or data are read.
  const auto model = models::build_model(config.model, data::dataset_info(config.data).input(), config.seed, torch::kCPU);
  check_deployable(requested_plan(request, config, *model), *model);
}

nlohmann::json run_export(const config::ExperimentConfig& config, const std::string& checkpoint,
                          const ExportRequest& request) {
  check_request(config, request);
  const auto start = std::chrono::steady_clock::now();
  const torch::Device device = util::resolve_device(config.device);
  auto model = models::build_model(config.model, data::dataset_info(config.data).input(), config.seed, device);
  io::load_checkpoint(checkpoint, *model, nullptr);
  const auto splits = data::load_splits(config.data, config.seed);
  if (!request.reference.empty() && splits[request.reference_split].size() == 0)
    throw UsageError("export --reference: the " + data::split_name(request.reference_split) + " split is empty");
  const auto plan = requested_plan(request, config, *model);
  spdlog::info("export: calibrating draws 0..{} and quantizing", request.draw);
  auto prepared = quant::prepare_post_training(*model, splits, config.quant, static_cast<uint64_t>(config.seed),
                                               request.draw + 1, config.data.eval_batch_size, device);
  const auto draw = static_cast<size_t>(request.draw);
  const auto deployed = deployed_model(*prepared.quantizer, plan, draw);
  const nlohmann::json plan_json = quant::bit_plan_json(plan, *model, {{"checkpoint", checkpoint}, {"draw", request.draw}});
  nlohmann::json result = {{"checkpoint", checkpoint},
                           {"out", request.out},
                           {"format", util::name_of(request.format, kExportFormatNames)},
                           {"draw", request.draw},
                           {"plan", plan_json},
                           {"quant", config.quant.to_json()}};
  const std::string config_yaml = config::to_yaml(config);
  if (request.format == ExportFormat::kOnnx) {
    const auto proto = onnx_model(*model, deployed, "qrobust export of " + checkpoint + ": " + plan_json.dump(), request.bias);
    result["bias"] = util::name_of(request.bias, kBiasEncodingNames);
    write_onnx(proto, request.out);
    result["nodes"] = proto.graph().node_size();
    result["initializers"] = proto.graph().initializer_size();
  } else {
    write_torch(*model, deployed, config_yaml, plan_json.dump(), request.draw, request.out);
  }
  if (!request.reference.empty())
    result["reference"] = write_reference(*prepared.quantizer, plan, draw, splits, request, config.data.eval_batch_size, device);
  result["elapsed_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace qrobust::deploy
