#pragma once
// `qrobust export`: a trained model, quantized as the sweep quantizes it for one configuration
// (or a bit plan file) and one calibration draw, written as ONNX QDQ (deploy/onnx_export.h) or
// as a PyTorch file (deploy/torch_export.h). Optionally also writes a reference: the split's
// images as qrobust feeds them and qrobust's own (fake-quantized) logits, so that a runtime's
// output can be compared image by image (scripts/check_onnx.sh).
#include <nlohmann/json.hpp>

#include <string>

#include "config/config.h"
#include "data/datasets.h"
#include "deploy/onnx_export.h"
#include "util/names.h"

namespace qrobust::deploy {

enum class ExportFormat { kOnnx, kTorch };
inline constexpr util::Names<ExportFormat, 2> kExportFormatNames{{{ExportFormat::kOnnx, "onnx"}, {ExportFormat::kTorch, "torch"}}};

// The largest calibration draw index: a sweep has at most 1000 draws.
constexpr int64_t kMaxDraw = 999;

struct ExportRequest {
  int weight_bits = 8;    // with act_bits, a uniform plan under the config's first/last policy
  int act_bits = 8;
  std::string plan_path;  // or a bit plan file (quant/bit_plan_file.h)
  int64_t draw = 0;       // the calibration draw whose ranges (and learned weights) are used
  ExportFormat format = ExportFormat::kOnnx;
  BiasEncoding bias = BiasEncoding::kInt32;  // ONNX: biases of integer layers as runtimes need them, or float
  std::string out;
  // When not empty: REFERENCE.json describing REFERENCE.images (float32 N x C x H x W, normalized),
  // REFERENCE.labels (int32) and REFERENCE.logits (float32, qrobust's), little-endian.
  std::string reference;
  data::Split reference_split = data::Split::kTest;
};

// Checks the request (bits, draw, plan file against the model) before reading the checkpoint's
// weights or any data; a bad request is a UsageError and nothing is written.
void check_request(const config::ExperimentConfig& config, const ExportRequest& request);

// Writes request.out (and the reference); returns what was written: plan, draw, format, sizes.
nlohmann::json run_export(const config::ExperimentConfig& config, const std::string& checkpoint,
                          const ExportRequest& request);

}  // namespace qrobust::deploy
