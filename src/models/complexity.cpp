#include "models/complexity.h"

#include <ATen/record_function.h>

#include <cstring>

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

}  // namespace

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
