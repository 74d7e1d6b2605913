#pragma once
// How much each element's quantization at each candidate bit-width is predicted to raise the
// float model's loss: the three criteria a mixed-precision search can rank elements by. Each
// scores every quantizable layer's weights and every quantization point on a set of labelled
// images (the val split), with the activation ranges of calibration draw 0:
//   first_order    the paper's bound term, (δ/2)·‖∂L/∂W‖₁ per output channel summed, and
//                  (δ_p/2)·‖∂L/∂a_p‖₁ per point (sweep/first_order.h): one gradient pass.
//   hessian_trace  HAWQ-v2: Tr(H_l)/n_l · ‖Q_b(W_l) − W_l‖²/2 per layer, with the Hessian traces
//                  from Hutchinson's estimator (Hessian-vector products by double backprop,
//                  seeded Rademacher probes); per point Tr(H_p)·δ_p²/24, the same second-order
//                  term for rounding noise uniform in ±δ_p/2 on every activation.
//   measured       the loss increase with only that element quantized (AIMET's per-layer
//                  sensitivity; `qrobust sensitivity`'s one-in figure): one evaluation per
//                  element and bit-width.
#include <torch/torch.h>

#include <functional>
#include <map>
#include <vector>

#include "data/datasets.h"
#include "mixed_precision/options.h"
#include "models/classifier.h"
#include "quant/calibration.h"

namespace qrobust::mixed_precision {

// Hutchinson's estimate of the trace of each diagonal block of the Hessian H of `loss` (a scalar
// with a graph through `inputs`): the mean over `samples` Rademacher vectors v (drawn from
// `generator`, on the CPU) over all inputs of vᵢᵀ(Hv)ᵢ for each input i, with Hv by double
// backprop. Unbiased; its variance falls as 1/samples.
std::vector<double> hutchinson_traces(const torch::Tensor& loss, const std::vector<torch::Tensor>& inputs,
                                      int64_t samples, at::Generator& generator);

// Predicted loss increase of each element at each of its candidate bit-widths.
struct ElementScores {
  std::vector<std::map<int, double>> layers;  // per quantizable layer: bits -> increase
  std::vector<std::map<int, double>> points;  // per quantization point
  double seconds = 0;
  int64_t passes = 0;  // forward passes over the scored images (a double-backprop probe counts as one)
};

// What every criterion scores with. The quantizer's model is BN-folded and calibrated.
struct ScoringInputs {
  quant::PostTrainingQuantizer* quantizer = nullptr;
  const data::LabeledImages* images = nullptr;  // labelled images the loss is taken over
  const data::DatasetInfo* info = nullptr;
  int64_t batch_size = 128;
  torch::Device device = torch::kCPU;
  uint64_t seed = 0;  // Hutchinson's probes
};

// The candidate bit-widths of every layer and point: `layer_bits` and `point_bits` hold the
// candidates of each element (a single one where the first/last policy fixes it).
ElementScores score_elements(Criterion criterion, const ScoringInputs& inputs,
                             const std::vector<std::vector<int>>& layer_bits,
                             const std::vector<std::vector<int>>& point_bits, int64_t hutchinson_samples,
                             const std::function<void(int64_t done, int64_t total)>& progress = {});

}  // namespace qrobust::mixed_precision
