#pragma once
// What leaves qrobust: a trained model quantized as one BitPlan and one calibration draw say,
// in the form a deployment file needs. Every layer's weight and bias are the ones the sweep
// computes with (after the recipe: CLE, bias correction, AdaRound), the weight on its grid;
// every point keeps its grid. The ONNX and PyTorch writers (deploy/onnx_export.h,
// deploy/torch_export.h) and `qrobust export` start here, so an exported model is the model
// `sweep-bits` measured.
#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "quant/calibration.h"

namespace qrobust::deploy {

struct DeployedLayer {
  std::string name;
  int bits = quant::kFloatBits;
  torch::Tensor weight;                    // float; on `grid` where quantized
  torch::Tensor bias;                      // float, or undefined
  std::optional<quant::AffineParams> grid; // none where the layer stays float
};

struct DeployedPoint {
  std::string name;
  int bits = quant::kFloatBits;
  std::optional<quant::AffineParams> grid;
};

struct DeployedModel {
  std::vector<DeployedLayer> layers;
  std::vector<DeployedPoint> points;
};

// Bit-widths a deployment file holds: 2..8 (inside int8 / uint8) or 32 (float); else a
// UsageError naming the element.
void check_deployable(const quant::BitPlan& plan, const models::ClassifierImpl& model);

// The layers and points of `quantizer`'s model under `plan` with calibration draw `draw`.
DeployedModel deployed_model(quant::PostTrainingQuantizer& quantizer, const quant::BitPlan& plan, size_t draw);

// The integers q with (q − zero point) · scale = values, as int32 (per channel along dim 0 where
// the grid is per channel); a value off the grid is a RuntimeFailure.
torch::Tensor grid_integers(const torch::Tensor& values, const quant::AffineParams& grid);

}  // namespace qrobust::deploy
