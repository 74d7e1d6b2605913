#pragma once
// A quantization point marks a place in a network where an activation is quantized: the network
// input, every ReLU / block output, the input of the classifier. It is the one concept shared by
// calibration (observe the tensor), post-training fake quantization (quantize it) and the
// activation-gradient penalty (record it so dCE/da can be taken). In plain training it is the
// identity.
#include <torch/torch.h>

#include <functional>
#include <string>

namespace qrobust::models {

enum class QuantPointMode {
  kOff,     // identity
  kRecord,   // identity, and keeps the tensor it saw (with its autograd history)
  kPerturb,   // adds a given tensor (finite-difference gradient penalties)
  kObserve,   // identity, and shows the tensor to an observer (calibration)
  kQuantize,  // applies a quantizer (post-training fake quantization)
};

class QuantPointImpl : public torch::nn::Module {
 public:
  torch::Tensor forward(torch::Tensor x);

  void set_mode(QuantPointMode mode);
  QuantPointMode mode() const { return mode_; }
  // kPerturb: the tensor added to the next inputs (same shape).
  void set_perturbation(torch::Tensor perturbation) { perturbation_ = std::move(perturbation); }

  // kObserve: called with every tensor seen. kQuantize: the quantizer applied.
  void set_observer(std::function<void(const torch::Tensor&)> observer) { observer_ = std::move(observer); }
  void set_quantizer(std::function<torch::Tensor(const torch::Tensor&)> quantizer) { quantizer_ = std::move(quantizer); }

  // The point's path in the model, e.g. "layer1.0.act2".
  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  // The tensor seen by the last forward in kRecord mode (undefined otherwise).
  const torch::Tensor& recorded() const { return recorded_; }

 private:
  QuantPointMode mode_ = QuantPointMode::kOff;
  torch::Tensor recorded_;
  torch::Tensor perturbation_;
  std::function<void(const torch::Tensor&)> observer_;
  std::function<torch::Tensor(const torch::Tensor&)> quantizer_;
  std::string name_;
};
TORCH_MODULE(QuantPoint);

}  // namespace qrobust::models
