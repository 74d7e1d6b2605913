#pragma once
// Batch-norm folding: every quantizable layer followed by a batch norm absorbs it,
//   W' = W · γ/σ (per output channel),  b' = (b − μ) · γ/σ + β,  σ = sqrt(running_var + eps),
// and the batch norm becomes the exact identity (γ = 1, β = 0, μ = 0, var = 1, eps = 0; the
// models skip a batch norm with eps 0 in evaluation, models/layer_ops.h).
// The folded model in eval mode computes what the original computes in eval mode; weight
// quantization then sees the weights inference actually uses, as in every PTQ toolkit.
#include "models/classifier.h"

namespace qrobust::quant {

// What a layer's batch norm makes of its output, per channel, if the normalized values are
// standard normal: mean β and standard deviation |γ|. Undefined for a layer without one.
// Analytical bias correction reads these; read them before folding.
struct OutputStatistics {
  torch::Tensor mean;
  torch::Tensor std;
};
std::vector<OutputStatistics> output_statistics(const models::ClassifierImpl& model);

// Folds in place (use a copy of the model). Returns the number of batch norms folded.
int fold_batch_norms(models::ClassifierImpl& model);

// γ/σ per output channel of `layer` from its batch norm's running statistics (no gradient),
// shaped to multiply its weight; undefined when the layer has no batch norm.
torch::Tensor fold_gain(const models::QuantLayer& layer);

}  // namespace qrobust::quant
