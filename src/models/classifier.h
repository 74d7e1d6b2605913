#pragma once
// The interface every image classifier in qrobust offers beyond forward(): the list of layers
// whose weights are quantized (each conv / linear with the batch norm that follows it, if any)
// and the list of activation quantization points, both in forward order. Batch-norm folding,
// weight quantization, the weight penalty and per-layer logging all walk `quant_layers()`;
// calibration, activation quantization and the activation penalty walk `quant_points()`.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "models/quant_point.h"

namespace qrobust::models {

// A weight layer as quantization sees it.
struct QuantLayer {
  std::string name;                          // parameter prefix, e.g. "layer1.0.conv1"
  std::shared_ptr<torch::nn::Module> layer;  // a Conv2dImpl or LinearImpl
  std::shared_ptr<torch::nn::Module> norm;   // the BatchNorm{1,2}dImpl applied to its output, or null

  torch::Tensor weight() const;  // the registered parameter
  // The tensors the layer's forward reads (its `weight` and `bias` members): the parameters,
  // unless BN folding (bias) or quantization-aware training (weight) points them elsewhere.
  torch::Tensor& forward_weight() const;
  torch::Tensor& forward_bias() const;
  // The layer's output for `input` with `weight` in place of its own, without bias.
  torch::Tensor apply(const torch::Tensor& input, const torch::Tensor& weight) const;
};

// Two weight layers joined only by a ReLU (and max pooling, which commutes with positive
// per-channel scales): output channel c of `first` feeds only input features
// c·group .. (c+1)·group − 1 of `second` (group > 1 where a flatten lies between). Cross-layer
// equalization and analytical bias correction walk these; residual additions break a link.
struct ReluLink {
  size_t first = 0;
  size_t second = 0;
  int64_t group = 1;
  bool through_max_pool = false;
};

// What a model is built for: input images C x H x W and the number of classes.
struct InputSpec {
  int64_t channels = 3;
  int64_t height = 32;
  int64_t width = 32;
  int64_t num_classes = 10;
};

class ClassifierImpl : public torch::nn::Module {
 public:
  ClassifierImpl(std::string architecture, InputSpec input);

  virtual torch::Tensor forward(torch::Tensor images) = 0;

  const std::string& architecture() const { return architecture_; }
  const InputSpec& input_spec() const { return input_; }
  const std::vector<QuantLayer>& quant_layers() const { return layers_; }
  const std::vector<QuantPoint>& quant_points() const { return points_; }
  const std::vector<ReluLink>& relu_links() const { return links_; }

  int64_t parameter_count() const;
  // Parameters, then buffers, by name: what a state dict holds.
  torch::OrderedDict<std::string, torch::Tensor> state() const;
  // Lays out the convolution weights in `format` (values unchanged). Images given in
  // channels-last then keep every activation channels-last: oneDNN's convolutions propagate it.
  void set_memory_format(c10::MemoryFormat format);

 protected:
  // Constructors declare, in forward order, the weight layers and points they registered.
  void declare_layer(const std::string& name, std::shared_ptr<torch::nn::Module> layer,
                     std::shared_ptr<torch::nn::Module> norm);
  void declare_point(const std::string& name, QuantPoint point);
  // Layers `first` and `second` (indices into quant_layers()) are joined only by a ReLU.
  void declare_relu_link(ReluLink link);
  // Declares a block's convolutions (each with the batch norm registered right after it) and
  // its quantization points, in registration order, with `prefix` (e.g. "layer1.0.").
  void declare_block(const std::string& prefix, torch::nn::Module& block);

  // He et al. (2015) fan-out normal init for convolutions, (1, 0) for batch norms, as
  // torchvision's ResNet and VGG do.
  void initialize_weights();

 private:
  std::string architecture_;
  InputSpec input_;
  std::vector<QuantLayer> layers_;
  std::vector<QuantPoint> points_;
  std::vector<ReluLink> links_;
};

using Classifier = std::shared_ptr<ClassifierImpl>;

}  // namespace qrobust::models
