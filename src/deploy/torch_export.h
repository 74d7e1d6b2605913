#pragma once
// A deployed model (deploy/deployed_model.h) as a file Python's torch.load reads (a pickled
// dict, like qrobust's checkpoints):
//   format "qrobust-quantized-model", version 1, architecture, input_shape, num_classes,
//   config (the resolved YAML), plan (the bit plan file's JSON text), draw;
//   layers: {name: {bits, weight (float, as inference uses it), bias (float or None)}} and, where
//     quantized, weight_int (int8, or uint8 for an unsigned grid), scale (float32), zero_point
//     (int32), axis (0 per channel, -1 per tensor), quant_min, quant_max, with
//     (weight_int − zero_point) · scale == weight exactly;
//   points: {name: {bits}} and, where quantized, scale, zero_point, quant_min, quant_max (the
//     calibration draw's activation grid).
// Weights are BN-folded (and equalized, corrected, AdaRounded where the recipe says so).
#include <string>

#include "deploy/deployed_model.h"
#include "models/classifier.h"

namespace qrobust::deploy {

void write_torch(const models::ClassifierImpl& model, const DeployedModel& deployed, const std::string& config_yaml,
                 const std::string& plan_json, int64_t draw, const std::string& path);

}  // namespace qrobust::deploy
