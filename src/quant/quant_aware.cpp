#include "quant/quant_aware.h"

#include "quant/bn_fold.h"

namespace qrobust::quant {

QuantAwareTraining::QuantAwareTraining(models::ClassifierImpl& model, const QuantOptions& quant,
                                       int weight_bits, int act_bits)
    : model_(model), quant_(quant), weight_bits_(weight_bits), act_bits_(act_bits) {}

void QuantAwareTraining::begin_epoch(const std::vector<torch::Tensor>& calibration) {
  ranges_ = std::make_unique<PostTrainingQuantizer>(model_, quant_);
  ranges_->calibrate(calibration);
  model_.train();
  if (!quant_.bn_fold()) return;
  for (const auto& layer : model_.quant_layers())
    if (layer.norm) layer.norm->eval();
}

QuantAwareTraining::QuantizedStep::QuantizedStep(QuantAwareTraining& owner) : owner_(owner) {
  const auto plan = owner.ranges_->plan(owner.weight_bits_, owner.act_bits_);
  const auto& layers = owner.model_.quant_layers();
  // All quantized weights first (a range that is not finite throws), then they take effect.
  std::vector<torch::Tensor> quantized_weights(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    const int bits = plan.layer_bits[i];
    if (bits == kFloatBits) continue;
    const auto& layer = layers[i];
    const auto weight = layer.weight();
    auto gain = owner.quant_.bn_fold() ? fold_gain(layer) : torch::Tensor();
    // A channel with γ = 0 is zeroed by its batch norm whatever the weight; avoid 0/0.
    if (gain.defined()) gain = torch::where(gain == 0, torch::ones_like(gain), gain);
    const auto folded = gain.defined() ? weight * gain : weight;
    const auto params = weight_params(folded.detach(), owner.quant_, bits);
    const auto quantized = fake_quantize(folded, params);
    quantized_weights[i] = gain.defined() ? quantized / gain : quantized;
  }
  activations_.emplace(owner.model_.quant_points(), owner.ranges_->activation_quantizers(plan.point_bits, 0));
  for (size_t i = 0; i < layers.size(); ++i) {
    previous_weights_.push_back(layers[i].forward_weight());
    if (quantized_weights[i].defined()) layers[i].forward_weight() = quantized_weights[i];
  }
}

QuantAwareTraining::QuantizedStep::~QuantizedStep() {
  activations_.reset();
  const auto& layers = owner_.model_.quant_layers();
  for (size_t i = 0; i < previous_weights_.size(); ++i) layers[i].forward_weight() = previous_weights_[i];
}

}  // namespace qrobust::quant
