#include "models/layer_ops.h"

#include <atomic>

namespace qrobust::models {
namespace {
using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Geometry of a convolution, kept in the autograd context.
struct Geometry {
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups;

  void save(AutogradContext* ctx) const {
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["groups"] = groups;
  }
  static Geometry load(AutogradContext* ctx) {
    return {ctx->saved_data["stride"].toIntVector(), ctx->saved_data["padding"].toIntVector(),
            ctx->saved_data["dilation"].toIntVector(), ctx->saved_data["groups"].toInt()};
  }
  std::tuple<Tensor, Tensor, Tensor> backward(const Tensor& grad_output, const Tensor& input, const Tensor& weight,
                                              std::array<bool, 3> mask) const {
    return at::convolution_backward(grad_output, input, weight, c10::nullopt, stride, padding, dilation, false, {0, 0},
                                    groups, mask);
  }
};

Geometry geometry_of(const torch::nn::Conv2dImpl& conv) {
  const auto& o = conv.options;
  TORCH_CHECK(c10::get_if<torch::ExpandingArray<2>>(&o.padding()) != nullptr, "conv2d: padding modes are not supported");
  const auto padding = c10::get<torch::ExpandingArray<2>>(o.padding());
  return {std::vector<int64_t>(o.stride()->begin(), o.stride()->end()),
          std::vector<int64_t>(padding->begin(), padding->end()),
          std::vector<int64_t>(o.dilation()->begin(), o.dilation()->end()), o.groups()};
}

Tensor forward_conv(const Tensor& input, const Tensor& weight, const Geometry& g) {
  return at::convolution(input, weight, {}, g.stride, g.padding, g.dilation, false, {0, 0}, g.groups);
}

class ConvInputGrad;
class ConvWeightGrad;

// y = conv(x, w)
class ConvFunction : public torch::autograd::Function<ConvFunction> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& input, const Tensor& weight, const Geometry& g) {
    g.save(ctx);
    ctx->save_for_backward({input, weight});
    return forward_conv(input, weight, g);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

// dx = conv_input_grad(dy, w): linear in dy and in w. `input` only gives the shape.
class ConvInputGrad : public torch::autograd::Function<ConvInputGrad> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& grad_output, const Tensor& weight, const Tensor& input,
                        const Geometry& g) {
    g.save(ctx);
    ctx->save_for_backward({grad_output, weight, input});
    return std::get<0>(g.backward(grad_output, input, weight, {true, false, false}));
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

// dw = conv_weight_grad(x, dy): linear in x and in dy. `weight` only gives the shape.
class ConvWeightGrad : public torch::autograd::Function<ConvWeightGrad> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& input, const Tensor& grad_output, const Tensor& weight,
                        const Geometry& g) {
    g.save(ctx);
    ctx->save_for_backward({input, grad_output, weight});
    return std::get<1>(g.backward(grad_output, input, weight, {false, true, false}));
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

variable_list ConvFunction::backward(AutogradContext* ctx, variable_list grads) {
  const auto saved = ctx->get_saved_variables();
  const auto& input = saved[0];
  const auto& weight = saved[1];
  const auto g = Geometry::load(ctx);
  Tensor grad_input, grad_weight;
  if (ctx->needs_input_grad(0)) grad_input = ConvInputGrad::apply(grads[0], weight, input.detach(), g);
  if (ctx->needs_input_grad(1)) grad_weight = ConvWeightGrad::apply(input, grads[0], weight.detach(), g);
  return {grad_input, grad_weight, Tensor()};
}

variable_list ConvInputGrad::backward(AutogradContext* ctx, variable_list grads) {
  const auto saved = ctx->get_saved_variables();
  const auto& grad_output = saved[0];
  const auto& weight = saved[1];
  const auto g = Geometry::load(ctx);
  Tensor d_grad_output, d_weight;
  if (ctx->needs_input_grad(0)) d_grad_output = ConvFunction::apply(grads[0], weight, g);
  if (ctx->needs_input_grad(1)) d_weight = ConvWeightGrad::apply(grads[0], grad_output, weight.detach(), g);
  return {d_grad_output, d_weight, Tensor(), Tensor()};
}

variable_list ConvWeightGrad::backward(AutogradContext* ctx, variable_list grads) {
  const auto saved = ctx->get_saved_variables();
  const auto& input = saved[0];
  const auto& grad_output = saved[1];
  const auto g = Geometry::load(ctx);
  Tensor d_input, d_grad_output;
  if (ctx->needs_input_grad(0)) d_input = ConvInputGrad::apply(grad_output, grads[0], input.detach(), g);
  if (ctx->needs_input_grad(1)) d_grad_output = ConvFunction::apply(input, grads[0], g);
  return {d_input, d_grad_output, Tensor(), Tensor()};
}

std::atomic<bool> g_fast_conv{true};

}  // namespace

void set_fast_conv(bool enabled) { g_fast_conv = enabled; }

torch::Tensor conv2d(const torch::Tensor& input, torch::nn::Conv2dImpl& conv) {
  if (!g_fast_conv) return conv.forward(input);
  auto out = ConvFunction::apply(input, conv.weight, geometry_of(conv));
  if (conv.bias.defined()) out = out + conv.bias.view({1, -1, 1, 1});
  return out;
}


}  // namespace qrobust::models
