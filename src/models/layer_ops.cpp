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

// Training-mode batch norm; updates the running statistics like the module does.
class BatchNormFunction : public torch::autograd::Function<BatchNormFunction> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& input, const Tensor& weight, const Tensor& bias,
                        const Tensor& running_mean, const Tensor& running_var, double momentum, double eps) {
    auto [output, mean, invstd] =
        at::native_batch_norm(input, weight, bias, running_mean, running_var, /*training=*/true, momentum, eps);
    ctx->save_for_backward({input, weight, mean, invstd});
    ctx->saved_data["eps"] = eps;
    return output;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &input = saved[0], &weight = saved[1];
    const double eps = ctx->saved_data["eps"].toDouble();
    const auto& grad_output = grads[0];
    if (!torch::GradMode::is_enabled()) {  // first order: the fused kernel
      auto [grad_input, grad_weight, grad_bias] = at::native_batch_norm_backward(
          grad_output, input, weight, {}, {}, saved[2], saved[3], /*train=*/true, eps,
          {ctx->needs_input_grad(0), ctx->needs_input_grad(1), ctx->needs_input_grad(2)});
      return {grad_input, grad_weight, grad_bias, Tensor(), Tensor(), Tensor(), Tensor()};
    }
    // Differentiable form (create_graph): statistics recomputed from the input so that their
    // dependence on it is recorded. Only per-channel tensors are built beyond the products
    // that cannot be avoided (no full-size centered copy, no full-size mean backward).
    std::vector<int64_t> dims = {0};
    for (int64_t d = 2; d < input.dim(); ++d) dims.push_back(d);
    std::vector<int64_t> shape(static_cast<size_t>(input.dim()), 1);
    shape[1] = input.size(1);
    const double inv_count = static_cast<double>(input.size(1)) / static_cast<double>(input.numel());
    const auto mean = input.sum(dims, /*keepdim=*/true) * inv_count;
    const auto variance = (input * input).sum(dims, true) * inv_count - mean * mean;
    const auto invstd = (variance + eps).rsqrt();
    const auto grad_bias = grad_output.sum(dims, true);
    const auto grad_centered = (grad_output * input).sum(dims, true) - mean * grad_bias;  // Σ dy (x - mean)
    // dx = a*dy + b*(x - mean) + c = a*dy + b*x + (c - b*mean)
    const auto a = weight.view(shape) * invstd;
    const auto b = a * invstd * invstd * grad_centered * (-inv_count);
    const auto c = a * grad_bias * (-inv_count) - b * mean;
    const auto grad_input = grad_output * a + input * b + c;
    return {grad_input, (grad_centered * invstd).view(-1), grad_bias.view(-1), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

std::atomic<bool> g_fast_conv{true};
std::atomic<bool> g_fast_batch_norm{true};

}  // namespace

void set_layer_ops(LayerOps ops) {
  g_fast_conv = ops.conv;
  g_fast_batch_norm = ops.batch_norm;
}

LayerOps layer_ops() { return {g_fast_conv, g_fast_batch_norm}; }

torch::Tensor conv2d(const torch::Tensor& input, torch::nn::Conv2dImpl& conv) {
  if (!g_fast_conv) return conv.forward(input);
  auto out = ConvFunction::apply(input, conv.weight, geometry_of(conv));
  if (conv.bias.defined()) out = out + conv.bias.view({1, -1, 1, 1});
  return out;
}


template <class BatchNormImpl>
torch::Tensor batch_norm(const torch::Tensor& input, BatchNormImpl& norm) {
  const auto& options = norm.options;
  if (!g_fast_batch_norm || !norm.is_training() || !options.track_running_stats() || !options.affine())
    return norm.forward(input);
  // As the module does: count batches, and a missing momentum means a cumulative average.
  norm.num_batches_tracked += 1;
  const double momentum = options.momentum() ? *options.momentum() : 1.0 / norm.num_batches_tracked.template item<double>();
  return BatchNormFunction::apply(input, norm.weight, norm.bias, norm.running_mean, norm.running_var, momentum,
                                  options.eps());
}

template torch::Tensor batch_norm(const torch::Tensor&, torch::nn::BatchNorm1dImpl&);
template torch::Tensor batch_norm(const torch::Tensor&, torch::nn::BatchNorm2dImpl&);

}  // namespace qrobust::models
