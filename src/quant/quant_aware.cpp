#include "quant/quant_aware.h"

#include "quant/bn_fold.h"

namespace qrobust::quant {

QuantAwareTraining::QuantAwareTraining(models::ClassifierImpl& model, const config::QuantConfig& quant,
                                       int weight_bits, int act_bits)
    : model_(model), quant_(quant), weight_bits_(weight_bits), act_bits_(act_bits) {}

void QuantAwareTraining::begin_epoch(const std::vector<torch::Tensor>& calibration) {
  activations_ = std::make_unique<PostTrainingQuantizer>(model_, quant_);
  activations_->calibrate(calibration);
  model_.train();
  if (!quant_.bn_fold) return;
  for (const auto& layer : model_.quant_layers())
    if (layer.norm) layer.norm->eval();
}

QuantAwareTraining::QuantizedStep::QuantizedStep(QuantAwareTraining& owner) : owner_(owner) {
  const auto& layers = owner.model_.quant_layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    const int bits = policy_bits(owner.quant_.first_last, i, layers.size(), owner.weight_bits_);
    if (bits == kFloatBits) continue;
    const auto& layer = layers[i];
    const auto weight = layer.weight();
    auto gain = owner.quant_.bn_fold ? fold_gain(layer) : torch::Tensor();
    // A channel with γ = 0 is zeroed by its batch norm whatever the weight; avoid 0/0.
    if (gain.defined()) gain = torch::where(gain == 0, torch::ones_like(gain), gain);
    const auto folded = gain.defined() ? weight * gain : weight;
    const auto params = weight_params(folded.detach(), owner.quant_, bits);
    const auto quantized = fake_quantize(folded, params);
    layer.forward_weight() = gain.defined() ? quantized / gain : quantized;
  }
  owner.activations_->quantize_activations(owner.act_bits_);
}

QuantAwareTraining::QuantizedStep::~QuantizedStep() {
  for (const auto& layer : owner_.model_.quant_layers()) layer.forward_weight() = layer.weight();
  owner_.model_.set_quant_point_mode(models::QuantPointMode::kOff);
}

}  // namespace qrobust::quant
