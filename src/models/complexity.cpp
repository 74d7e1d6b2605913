#include "models/complexity.h"

#include <ATen/record_function.h>

#include <cstring>
#include <map>
#include <stdexcept>

namespace qrobust::models {
namespace {

thread_local int64_t* g_counted_macs = nullptr;  // set only while macs_per_image runs on this thread

void count_op(const at::RecordFunction& fn, at::ObserverContext*) {
  if (g_counted_macs == nullptr || fn.outputs().empty() || !fn.outputs()[0].isTensor()) return;
  const auto inputs = fn.inputs();
  const auto output = fn.outputs()[0].toTensor();
  const char* name = fn.name();
  if (std::strcmp(name, "aten::convolution") == 0) {
    const auto weight = inputs[1].toTensor();  // C_out x C_in/groups x k x k
    *g_counted_macs += output.numel() * (weight.numel() / weight.size(0));
  } else if (std::strcmp(name, "aten::addmm") == 0 || std::strcmp(name, "aten::mm") == 0) {
    const auto left = inputs[std::strcmp(name, "aten::addmm") == 0 ? 1 : 0].toTensor();  // rows x inner
    *g_counted_macs += output.numel() * left.size(1);
  }
}

// Counts into `macs` while alive.
class CountingScope {
 public:
  explicit CountingScope(int64_t& macs)
      : handle_(at::addThreadLocalCallback(
            at::RecordFunctionCallback(nullptr, count_op).needsInputs(true).needsOutputs(true))) {
    g_counted_macs = &macs;
  }
  ~CountingScope() {
    at::removeCallback(handle_);
    g_counted_macs = nullptr;
  }
  CountingScope(const CountingScope&) = delete;
  CountingScope& operator=(const CountingScope&) = delete;

 private:
  at::CallbackHandle handle_;
};

// What layer_costs follows through one forward pass: which tensors hold a quantization point's
// output (by storage address), and each layer's cost as its operation runs.
struct LayerTrace {
  std::map<const void*, size_t> point_of;  // tensor data -> point index
  std::map<const void*, size_t> layer_of;  // weight data -> layer index
  std::vector<LayerCost> costs;
  std::vector<bool> seen;
};
thread_local LayerTrace* g_trace = nullptr;  // set only while layer_costs runs on this thread

bool is_tensor(const c10::IValue& value) { return value.isTensor() && value.toTensor().defined(); }

void trace_op(const at::RecordFunction& fn, at::ObserverContext*) {
  if (g_trace == nullptr || fn.outputs().empty() || !is_tensor(fn.outputs()[0])) return;
  auto& trace = *g_trace;
  const auto inputs = fn.inputs();
  const auto output = fn.outputs()[0].toTensor();
  const char* name = fn.name();
  const void* out = output.data_ptr();
  // The (input, weight) pair of a layer's product, where this is one.
  const bool convolution = std::strcmp(name, "aten::convolution") == 0;
  int input_slot = -1, weight_slot = -1;
  if (convolution) input_slot = 0, weight_slot = 1;
  else if (std::strcmp(name, "aten::addmm") == 0) input_slot = 1, weight_slot = 2;
  else if (std::strcmp(name, "aten::mm") == 0) input_slot = 0, weight_slot = 1;
  if (weight_slot >= 0 && is_tensor(inputs[weight_slot]) && is_tensor(inputs[input_slot])) {
    const auto weight = inputs[weight_slot].toTensor();
    const auto layer = trace.layer_of.find(weight.data_ptr());
    const auto point = trace.point_of.find(inputs[input_slot].toTensor().data_ptr());
    if (layer != trace.layer_of.end() && point != trace.point_of.end() && !trace.seen[layer->second]) {
      auto& cost = trace.costs[layer->second];
      cost.input_point = point->second;
      // Output elements × fan-in (convolution) or × the inner size (matrix product).
      cost.macs = output.numel() * (convolution ? weight.numel() / weight.size(0) : inputs[input_slot].toTensor().size(1));
      trace.seen[layer->second] = true;
    }
  }
  // A view or in-place result keeps its input's storage and so its point; max pooling keeps the
  // point's grid; any other new tensor at a reused address holds no point's output.
  for (const auto& input : inputs)
    if (is_tensor(input) && input.toTensor().data_ptr() == out) return;
  const auto source = is_tensor(inputs[0]) ? trace.point_of.find(inputs[0].toTensor().data_ptr()) : trace.point_of.end();
  if (std::strstr(name, "max_pool") != nullptr && source != trace.point_of.end())
    trace.point_of[out] = source->second;
  else
    trace.point_of.erase(out);
}

}  // namespace

std::vector<LayerCost> layer_costs(ClassifierImpl& model) {
  const auto& layers = model.quant_layers();
  LayerTrace trace;
  trace.costs.resize(layers.size());
  trace.seen.assign(layers.size(), false);
  for (size_t i = 0; i < layers.size(); ++i) {
    trace.costs[i].weights = layers[i].weight().numel();
    trace.layer_of[layers[i].weight().data_ptr()] = i;
    trace.layer_of[layers[i].forward_weight().data_ptr()] = i;
  }
  const bool was_training = model.is_training();
  const auto& input = model.input_spec();
  const auto device = model.parameters().front().device();
  {
    const ObserveScope observe(model.quant_points(), [&](size_t index, const torch::Tensor& x) {
      trace.point_of[x.data_ptr()] = index;
    });
    g_trace = &trace;
    const auto handle =
        at::addThreadLocalCallback(at::RecordFunctionCallback(nullptr, trace_op).needsInputs(true).needsOutputs(true));
    try {
      torch::NoGradGuard no_grad;
      model.eval();
      model.forward(torch::zeros({1, input.channels, input.height, input.width}, torch::TensorOptions().device(device)));
    } catch (...) {
      at::removeCallback(handle);
      g_trace = nullptr;
      model.train(was_training);
      throw;
    }
    at::removeCallback(handle);
    g_trace = nullptr;
  }
  model.train(was_training);
  for (size_t i = 0; i < layers.size(); ++i)
    if (!trace.seen[i]) throw std::logic_error("layer " + layers[i].name + " reads no quantization point");
  return trace.costs;
}

int64_t macs_per_image(ClassifierImpl& model) {
  const bool was_training = model.is_training();
  const auto& input = model.input_spec();
  const auto device = model.parameters().front().device();
  int64_t macs = 0;
  {
    const CountingScope counting(macs);
    torch::NoGradGuard no_grad;
    model.eval();  // eval: the forward pass leaves batch-norm statistics alone
    model.forward(torch::zeros({1, input.channels, input.height, input.width}, torch::TensorOptions().device(device)));
  }
  model.train(was_training);
  return macs;
}

}  // namespace qrobust::models
