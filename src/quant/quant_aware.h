#pragma once
// Quantization-aware training (the paper's STE baseline): the forward pass of every training
// step sees the model as `sweep-bits` will quantize it at one bit-width, and the backward pass
// uses the straight-through estimator that LibTorch's fake-quantize ops define (gradient 1
// inside the quantizer's range, 0 outside).
//
// The quantizers are the sweep's (the config's `quant:` section, first/last-layer policy
// included). With BN folding, weights are quantized as the sweep quantizes them, folded:
// the layer computes fq(W·γ/σ)·σ/γ, which its batch norm turns into fq(W·γ/σ) + b'. For that
// to be what the folded model computes, batch norms use their running statistics, frozen
// (eval mode), during quantization-aware training; W, γ and β still train. Weight ranges
// follow the weights every step; activation ranges are calibrated at the start of every
// epoch on the sweep's calibration images (so a resumed run repeats an uninterrupted one).
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <vector>

#include "models/classifier.h"
#include "quant/calibration.h"

namespace qrobust::quant {

class QuantAwareTraining {
 public:
  QuantAwareTraining(models::ClassifierImpl& model, const QuantOptions& quant, int weight_bits, int act_bits);

  // Calibrates the activation ranges on `calibration` (eval mode), then puts the model in
  // training mode with batch norms frozen when folding.
  void begin_epoch(const std::vector<torch::Tensor>& calibration);

  // While alive, the model's forward is quantized; construct it before the step's forward and
  // let it go before optimizer.step(). Closing restores the layers' forward weights and the
  // points' quantizers to what they were.
  class QuantizedStep {
   public:
    explicit QuantizedStep(QuantAwareTraining& owner);
    ~QuantizedStep();
    QuantizedStep(const QuantizedStep&) = delete;
    QuantizedStep& operator=(const QuantizedStep&) = delete;

   private:
    QuantAwareTraining& owner_;
    std::vector<torch::Tensor> previous_weights_;
    std::optional<models::QuantizeScope> activations_;
  };

 private:
  models::ClassifierImpl& model_;
  QuantOptions quant_;
  int weight_bits_, act_bits_;
  std::unique_ptr<PostTrainingQuantizer> ranges_;  // this epoch's activation ranges
};

}  // namespace qrobust::quant
