#include "models/layer_ops.h"

#include "models/trace.h"

namespace qrobust::models {
namespace F = torch::nn::functional;
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

// The statistics a training-mode batch norm computed in its forward pass, and its running
// buffers. Kept out of the autograd inputs: none of them is differentiated.
struct NormState {
  Tensor running_mean, running_var, mean, invstd;
  double momentum = 0, eps = 0;
};

// y = γ (x − mean) / σ + β with the batch's statistics (training mode).
class BatchNormFunction : public torch::autograd::Function<BatchNormFunction> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& input, const Tensor& weight, const Tensor& bias,
                        NormState state) {
    auto [out, mean, invstd] = at::native_batch_norm(input, weight, bias, state.running_mean, state.running_var,
                                                     /*training=*/true, state.momentum, state.eps);
    ctx->save_for_backward({input, weight});
    ctx->saved_data["mean"] = mean;
    ctx->saved_data["invstd"] = invstd;
    ctx->saved_data["eps"] = state.eps;
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

// (dx, dγ, dβ) = batch_norm_backward(dy, x, γ): LibTorch's fused first-order kernel. Its own
// gradient is written out below, so that differentiating it costs two reductions and five
// element-wise passes, where LibTorch's generic double backward runs about 37 operations.
class BatchNormGrad : public torch::autograd::Function<BatchNormGrad> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& grad_output, const Tensor& input,
                               const Tensor& weight, NormState state) {
    auto [grad_input, grad_weight, grad_bias] =
        at::native_batch_norm_backward(grad_output, input, weight, {}, {}, state.mean, state.invstd,
                                       /*train=*/true, state.eps, {true, true, true});
    ctx->save_for_backward({grad_output, input, weight});
    const double count = static_cast<double>(input.numel() / input.size(1));
    ctx->saved_data["mean"] = state.mean;
    ctx->saved_data["invstd"] = state.invstd;
    ctx->saved_data["eps"] = state.eps;
    // mean(dy) and mean(dy·x̂) per channel, for the second derivative.
    ctx->saved_data["dy_mean"] = grad_bias / count;
    ctx->saved_data["dy_xhat_mean"] = grad_weight / count;
    return {grad_input, grad_weight, grad_bias};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

variable_list BatchNormFunction::backward(AutogradContext* ctx, variable_list grads) {
  const auto saved = ctx->get_saved_variables();
  NormState state;
  state.mean = ctx->saved_data["mean"].toTensor();
  state.invstd = ctx->saved_data["invstd"].toTensor();
  state.eps = ctx->saved_data["eps"].toDouble();
  auto out = BatchNormGrad::apply(grads[0], saved[0], saved[1], state);
  return {out[0], out[1], out[2], Tensor()};
}

// With x̂ = (x − mean)/σ, a = γ/σ, P(v) = v − mean(v) − x̂·mean(v·x̂) (per channel), the first
// derivative is dx = a·P(dy), dγ = Σ dy·x̂, dβ = Σ dy. For incoming gradients (u, g_γ, g_β) of
// (dx, dγ, dβ), with K = g_γ − a·mean(u·x̂) and M1 = mean(dy), M2 = mean(dy·x̂):
//   ∂/∂dy = a·u + K·x̂ + g_β − a·mean(u)
//   ∂/∂x  = (1/σ)·[−a·mean(u·P(dy))·x̂ − a·M2·P(u) + K·P(dy)]
//   ∂/∂γ  = (1/σ)·Σ u·P(dy)
// Every full-size term is a per-channel multiple of u, dy or x: two reductions and five
// element-wise passes in all.
variable_list BatchNormGrad::backward(AutogradContext* ctx, variable_list grads) {
  const auto saved = ctx->get_saved_variables();
  const auto& grad_output = saved[0];
  const auto& input = saved[1];
  const auto& weight = saved[2];
  const auto mean = ctx->saved_data["mean"].toTensor();
  const auto invstd = ctx->saved_data["invstd"].toTensor();
  const double eps = ctx->saved_data["eps"].toDouble();
  const auto m1 = ctx->saved_data["dy_mean"].toTensor();
  const auto m2 = ctx->saved_data["dy_xhat_mean"].toTensor();
  // Autograd hands a zero tensor for any output that received no gradient.
  const auto& u = grads[0];
  const auto& g_weight = grads[1];
  const auto& g_bias = grads[2];

  // Per-channel sums of u, u·x̂ and u·dy: LibTorch's fused reduction kernel gives two sums per
  // pass (with mean 0 and invstd 1, its Σ u·x̂ is Σ u·dy).
  const auto [unused, sum_u_xhat, sum_u] =
      at::native_batch_norm_backward(u, input, {}, {}, {}, mean, invstd, true, eps, {false, true, true});
  const auto sum_u_dy = std::get<1>(at::native_batch_norm_backward(
      u, grad_output, {}, {}, {}, torch::zeros_like(mean), torch::ones_like(invstd), true, eps, {false, true, false}));
  const double count = static_cast<double>(input.numel() / input.size(1));
  const auto u_mean = sum_u / count, u_xhat_mean = sum_u_xhat / count;
  const auto u_pdy_mean = sum_u_dy / count - m1 * u_mean - m2 * u_xhat_mean;  // mean(u·P(dy))
  const auto a = weight * invstd;
  const auto k = g_weight - a * u_xhat_mean;

  std::vector<int64_t> channel_shape(input.dim(), 1);
  channel_shape[1] = -1;
  // c_u·u + c_dy·dy + c_xhat·x̂ + c, with x̂ = (x − mean)·invstd folded into x's coefficient.
  auto combine = [&](const Tensor& c_u, const Tensor& c_dy, const Tensor& c_xhat, const Tensor& c) {
    // (addcmul with a broadcast per-channel first operand is several times slower than this.)
    const auto c_x = c_xhat * invstd;
    auto out = at::mul(input, c_x.view(channel_shape));
    if (c_dy.defined()) out.addcmul_(grad_output, c_dy.view(channel_shape));
    return out.addcmul_(u, c_u.view(channel_shape)).add_((c - c_x * mean).view(channel_shape));
  };
  Tensor d_grad_output, d_input, d_weight;
  if (ctx->needs_input_grad(0)) d_grad_output = combine(a, {}, k, g_bias - a * u_mean);
  if (ctx->needs_input_grad(1))
    d_input = combine(-invstd * a * m2, invstd * k, invstd * (-a * u_pdy_mean + a * m2 * u_xhat_mean - k * m2),
                      invstd * (a * m2 * u_mean - k * m1));
  if (ctx->needs_input_grad(2)) d_weight = invstd * u_pdy_mean * count;
  return {d_grad_output, d_input, d_weight, Tensor()};
}

// relu(x), whose gradient threshold_backward(dy, relu(x)) is differentiated with respect to dy
// only: LibTorch's double backward also returns an explicit zero tensor for x.
class ReluGrad : public torch::autograd::Function<ReluGrad> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& grad_output, const Tensor& result) {
    ctx->save_for_backward({result});
    return at::threshold_backward(grad_output, result, 0);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {at::threshold_backward(grads[0], ctx->get_saved_variables()[0], 0), Tensor()};
  }
};

class ReluFunction : public torch::autograd::Function<ReluFunction> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& input) {
    auto result = at::relu(input);
    ctx->save_for_backward({result});
    return result;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {ReluGrad::apply(grads[0], ctx->get_saved_variables()[0].detach())};
  }
};

thread_local bool t_custom_layer_ops = true;
thread_local std::vector<std::pair<const torch::nn::Module*, std::function<void(const Tensor&)>>> t_input_observers;

void observe_input(const torch::nn::Module& layer, const Tensor& input) {
  for (const auto& [observed, observer] : t_input_observers)
    if (observed == &layer) observer(input);
}

template <typename Norm>
torch::Tensor apply_batch_norm(const torch::Tensor& input, Norm& norm) {
  const auto& o = norm.options;
  // A batch norm folded into its layer (quant/bn_fold.h) is the exact identity, marked by eps 0:
  // evaluated, it would cost a pass over the layer's output for nothing.
  if (!norm.is_training() && o.eps() == 0.0) return input;
  if (tracing()) {
    auto out = norm.forward(input);
    record({TracedOp::Kind::kBatchNorm, &norm, {input}, out, {}});
    return out;
  }
  // Evaluation mode (running statistics), and options the models do not use, take LibTorch's path.
  if (!t_custom_layer_ops || !norm.is_training() || !o.affine() || !o.track_running_stats() || !o.momentum())
    return norm.forward(input);
  TORCH_CHECK(input.numel() / input.size(1) > 1, "Expected more than 1 value per channel when training, got input size ",
              input.sizes());
  norm.num_batches_tracked += 1;
  const NormState state{norm.running_mean, norm.running_var, {}, {}, *o.momentum(), o.eps()};
  return BatchNormFunction::apply(input, norm.weight, norm.bias, state);
}

}  // namespace

LibTorchLayerOpsGuard::LibTorchLayerOpsGuard() : previous_(t_custom_layer_ops) { t_custom_layer_ops = false; }
LibTorchLayerOpsGuard::~LibTorchLayerOpsGuard() { t_custom_layer_ops = previous_; }

torch::Tensor relu(const torch::Tensor& input) {
  auto out = t_custom_layer_ops ? ReluFunction::apply(input) : torch::relu(input);
  if (tracing()) record({TracedOp::Kind::kRelu, nullptr, {input}, out, {}});
  return out;
}

torch::Tensor add_residual(const torch::Tensor& out, const torch::Tensor& shortcut) {
  auto sum = out + shortcut;
  if (tracing()) record({TracedOp::Kind::kAdd, nullptr, {out, shortcut}, sum, {}});
  return sum;
}

torch::Tensor max_pool2d(const torch::Tensor& input, int64_t kernel, int64_t stride, int64_t padding, bool ceil_mode) {
  auto out = F::max_pool2d(input, F::MaxPool2dFuncOptions(kernel).stride(stride).padding(padding).ceil_mode(ceil_mode));
  if (tracing()) record({TracedOp::Kind::kMaxPool, nullptr, {input}, out, {kernel, stride, padding, ceil_mode ? 1 : 0}});
  return out;
}

torch::Tensor global_average_pool(const torch::Tensor& input) {
  auto out = F::adaptive_avg_pool2d(input, F::AdaptiveAvgPool2dFuncOptions(1)).flatten(1);
  if (tracing()) record({TracedOp::Kind::kGlobalAveragePool, nullptr, {input}, out, {}});
  return out;
}

torch::Tensor flatten(const torch::Tensor& input) {
  auto out = input.flatten(1);
  if (tracing()) record({TracedOp::Kind::kFlatten, nullptr, {input}, out, {}});
  return out;
}

torch::Tensor subsample_and_pad(const torch::Tensor& input, int64_t stride, int64_t pad_channels) {
  using torch::indexing::None;
  using torch::indexing::Slice;
  auto out = input.index({Slice(), Slice(), Slice(None, None, stride), Slice(None, None, stride)});
  out = F::pad(out, F::PadFuncOptions({0, 0, 0, 0, pad_channels, pad_channels}));
  if (tracing()) record({TracedOp::Kind::kSubsampleAndPad, nullptr, {input}, out, {stride, pad_channels}});
  return out;
}

torch::Tensor batch_norm(const torch::Tensor& input, torch::nn::BatchNorm1dImpl& norm) {
  return apply_batch_norm(input, norm);
}

torch::Tensor batch_norm(const torch::Tensor& input, torch::nn::BatchNorm2dImpl& norm) {
  return apply_batch_norm(input, norm);
}

LayerInputScope::LayerInputScope(const torch::nn::Module& layer, std::function<void(const torch::Tensor&)> observer)
    : depth_(t_input_observers.size()) {
  t_input_observers.emplace_back(&layer, std::move(observer));
}

LayerInputScope::~LayerInputScope() { t_input_observers.resize(depth_); }

torch::Tensor convolve(const torch::Tensor& input, const torch::Tensor& weight, const torch::nn::Conv2dImpl& conv) {
  return forward_conv(input, weight, geometry_of(conv));
}

torch::Tensor linear(const torch::Tensor& input, torch::nn::LinearImpl& linear) {
  if (!t_input_observers.empty()) observe_input(linear, input);
  auto out = linear.forward(input);
  if (tracing()) record({TracedOp::Kind::kLinear, &linear, {input}, out, {}});
  return out;
}

torch::Tensor conv2d(const torch::Tensor& input, torch::nn::Conv2dImpl& conv) {
  if (!t_input_observers.empty()) observe_input(conv, input);
  torch::Tensor out;
  if (t_custom_layer_ops) {
    out = ConvFunction::apply(input, conv.weight, geometry_of(conv));
    if (conv.bias.defined()) out = out + conv.bias.view({1, -1, 1, 1});
  } else {
    out = conv.forward(input);
  }
  if (tracing()) record({TracedOp::Kind::kConv, &conv, {input}, out, {}});
  return out;
}

}  // namespace qrobust::models
