#pragma once
// Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight
// Equalization and Bias Correction"). For two layers joined only by a ReLU (models::ReluLink),
// ReLU(x/s) = ReLU(x)/s for s > 0, so dividing output channel c of the first layer (weights and
// bias) by s_c and multiplying the matching inputs of the second by s_c leaves the network's
// function unchanged. With r1_c the largest |weight| of output channel c of the first layer and
// r2_c that of input channel c of the second, s_c = sqrt(r1_c / r2_c) makes both sqrt(r1_c·r2_c),
// which evens out per-tensor ranges. Chains (a -> b -> c) are swept until the scales settle.
// The model must be BN-folded: a batch norm between the layers would undo the scaling.
#include <torch/torch.h>

#include <vector>

#include "models/classifier.h"
#include "quant/bn_fold.h"

namespace qrobust::quant {

// The scales one pass over the model's links would apply, one tensor per link (all 1 when the
// model is equalized). A channel with no weight on either side keeps scale 1.
std::vector<torch::Tensor> equalization_scales(const models::ClassifierImpl& model);

struct EqualizationReport {
  int64_t links = 0;
  int64_t passes = 0;          // sweeps over the links
  double max_log_scale = 0;    // largest |log s| of the last sweep
};

// Equalizes in place until the largest |log s| of a sweep is below `tolerance` (or after
// `max_passes` sweeps). `statistics` (output_statistics of the model before folding), when
// given, follows the scaling: a channel divided by s has its mean and deviation divided by s.
EqualizationReport equalize(models::ClassifierImpl& model, std::vector<OutputStatistics>* statistics = nullptr,
                            double tolerance = 1e-6, int64_t max_passes = 1000);

}  // namespace qrobust::quant
