#pragma once
// A quantization point marks a place in a network where an activation is quantized: the network
// input, every ReLU / block output, the input of the classifier. It is the one concept shared by
// calibration (observe the tensor), post-training and quantization-aware fake quantization
// (quantize it), the activation-gradient penalty (record it so dCE/da can be taken) and its
// finite-difference estimate (perturb it). In plain training it is the identity.
//
// The four are independent taps, applied in this order by forward(x):
//   observe(x)            the float tensor, before quantization (calibration)
//   y = quantize(x)       when a quantizer is installed, else y = x
//   y = y + perturbation  when one is set (same shape as y)
//   record y              when recording: the tensor the rest of the network sees
// so quantization-aware training and a gradient penalty combine: the penalty records (and
// perturbs) the quantized activation.
//
// Clients never set taps for good: they open one of the scopes below, which restores each
// point's previous tap when it closes, also when an exception unwinds it.
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace qrobust::models {

class QuantPointImpl : public torch::nn::Module {
 public:
  using Observer = std::function<void(const torch::Tensor&)>;
  using Quantizer = std::function<torch::Tensor(const torch::Tensor&)>;

  torch::Tensor forward(torch::Tensor x);

  const Observer& observer() const { return observer_; }
  void set_observer(Observer observer) { observer_ = std::move(observer); }
  const Quantizer& quantizer() const { return quantizer_; }
  void set_quantizer(Quantizer quantizer) { quantizer_ = std::move(quantizer); }
  const torch::Tensor& perturbation() const { return perturbation_; }
  void set_perturbation(torch::Tensor perturbation) { perturbation_ = std::move(perturbation); }
  bool recording() const { return recording_; }
  // Turning recording off also drops the recorded tensor (and the graph it holds).
  void set_recording(bool on);
  // The tensor seen by the last forward while recording (undefined otherwise).
  const torch::Tensor& recorded() const { return recorded_; }

  // The point's path in the model, e.g. "layer1.0.act2".
  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }

 private:
  Observer observer_;
  Quantizer quantizer_;
  torch::Tensor perturbation_;
  bool recording_ = false;
  torch::Tensor recorded_;
  std::string name_;
};
TORCH_MODULE(QuantPoint);

// Restores, when it closes, what its constructor changed (newest change first).
class QuantPointScope {
 public:
  QuantPointScope() = default;
  QuantPointScope(const QuantPointScope&) = delete;
  QuantPointScope& operator=(const QuantPointScope&) = delete;
  ~QuantPointScope();

 protected:
  std::vector<std::function<void()>> undo_;
};

// Records the output of every point in `points` while alive.
class RecordScope : public QuantPointScope {
 public:
  explicit RecordScope(const std::vector<QuantPoint>& points);
};

// Shows every point's float input to `observer(index in points, tensor)` while alive.
class ObserveScope : public QuantPointScope {
 public:
  ObserveScope(const std::vector<QuantPoint>& points, std::function<void(size_t, const torch::Tensor&)> observer);
};

// Installs quantizers[i] at points[i] while alive; a null quantizer leaves that point float.
class QuantizeScope : public QuantPointScope {
 public:
  QuantizeScope(const std::vector<QuantPoint>& points, const std::vector<QuantPointImpl::Quantizer>& quantizers);
};

// Adds perturbations[i] to the output of points[i] while alive.
class PerturbScope : public QuantPointScope {
 public:
  PerturbScope(const std::vector<QuantPoint>& points, const std::vector<torch::Tensor>& perturbations);
};

}  // namespace qrobust::models
