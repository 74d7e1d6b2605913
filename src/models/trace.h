#pragma once
// A record of what one forward pass computed, operation by operation, for writing the network
// as a graph (deploy/onnx_export.h). The operations of models/layer_ops.h and every
// quantization point record themselves while a TraceScope is open on the thread, so a model's
// forward() is its graph and is written once. An export that meets a tensor no recorded
// operation produced knows the forward used an operation outside layer_ops.h, and says so.
#include <torch/torch.h>

#include <vector>

namespace qrobust::models {

struct TracedOp {
  enum class Kind {
    kConv,                // module: the Conv2dImpl (its own stride, padding, groups, bias)
    kLinear,              // module: the LinearImpl
    kBatchNorm,           // module: a batch norm that was not folded
    kRelu,
    kAdd,                 // two inputs
    kMaxPool,             // attributes: kernel, stride, padding, ceil mode (0 / 1)
    kGlobalAveragePool,   // N x C x H x W to N x C
    kFlatten,             // N x ... to N x features
    kSubsampleAndPad,     // option A shortcut; attributes: stride, channels padded on each side
    kPoint,               // module: the QuantPointImpl; output is the point's input as traced (float)
  };
  Kind kind;
  const torch::nn::Module* module = nullptr;
  std::vector<torch::Tensor> inputs;
  torch::Tensor output;
  std::vector<int64_t> attributes;
};

// While alive, collects the operations this thread's forward passes run. Holding every tensor
// keeps their addresses distinct, so a tensor's identity names it in the graph. Scopes do not nest.
class TraceScope {
 public:
  TraceScope();
  ~TraceScope();
  TraceScope(const TraceScope&) = delete;
  TraceScope& operator=(const TraceScope&) = delete;
  const std::vector<TracedOp>& ops() const { return ops_; }

 private:
  std::vector<TracedOp> ops_;
};

// Whether a TraceScope is open on this thread (operations record only then).
bool tracing();
void record(TracedOp op);

}  // namespace qrobust::models
