#include "regularize/regularizer.h"

#include <algorithm>
#include <optional>

#include "regularize/penalties.h"

namespace qrobust::regularize {
namespace F = torch::nn::functional;

namespace {

std::vector<torch::Tensor> layer_weights(const models::ClassifierImpl& model) {
  std::vector<torch::Tensor> weights;
  for (const auto& layer : model.quant_layers()) weights.push_back(layer.weight());
  return weights;
}

// The recorded activations that depend on the weights (the network input does not), with
// their points.
std::vector<std::pair<models::QuantPoint, torch::Tensor>> recorded_activations(const models::ClassifierImpl& model) {
  std::vector<std::pair<models::QuantPoint, torch::Tensor>> out;
  for (const auto& point : model.quant_points())
    if (point->recorded().defined() && point->recorded().requires_grad()) out.emplace_back(point, point->recorded());
  return out;
}

// Records the quantization points while alive when `on` (the activation term needs them).
struct OptionalRecord {
  std::optional<models::RecordScope> scope;
  OptionalRecord(const models::ClassifierImpl& model, bool on) {
    if (on) scope.emplace(model.quant_points());
  }
};

// The model's buffers (batch-norm running statistics) at construction, for passes that must
// not update them.
class BufferSnapshot {
 public:
  explicit BufferSnapshot(const models::ClassifierImpl& model) {
    torch::NoGradGuard no_grad;
    for (const auto& b : model.buffers()) saved_.push_back(b.clone());
  }
  void restore(const models::ClassifierImpl& model) const {
    torch::NoGradGuard no_grad;
    auto buffers = model.buffers();
    for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(saved_[i]);
  }

 private:
  std::vector<torch::Tensor> saved_;
};

class PlainStep : public Regularizer {
 public:
  StepResult step(models::ClassifierImpl& model, const torch::Tensor& images, const torch::Tensor& targets) override {
    const auto logits = model.forward(images);
    const auto ce = F::cross_entropy(logits, targets);
    ce.backward();
    return {logits.detach(), ce.item<double>(), 0.0};
  }
};

// Penalties that are plain functions of the weights.
class WeightPenalty : public Regularizer {
 public:
  using Term = std::function<torch::Tensor(const torch::Tensor&)>;
  WeightPenalty(double lambda, Term term) : lambda_(lambda), term_(std::move(term)) {}

  StepResult step(models::ClassifierImpl& model, const torch::Tensor& images, const torch::Tensor& targets) override {
    const auto logits = model.forward(images);
    const auto ce = F::cross_entropy(logits, targets);
    auto penalty = torch::zeros({}, ce.options());
    for (const auto& weight : layer_weights(model)) penalty = penalty + term_(weight);
    penalty = lambda_ * penalty;
    (ce + penalty).backward();
    return {logits.detach(), ce.item<double>(), penalty.item<double>()};
  }

 private:
  double lambda_;
  Term term_;
};

// CE on a batch and the λ-weighted gradient-norm penalty, both still differentiable (the
// penalty through double backprop: autograd::grad with create_graph).
struct DifferentiablePenalty {
  torch::Tensor logits, cross_entropy, penalty;
};
DifferentiablePenalty gradient_norm_penalty(models::ClassifierImpl& model, const torch::Tensor& images,
                                            const torch::Tensor& targets, Norm kind, double lambda_w, double lambda_a) {
  OptionalRecord record(model, lambda_a > 0);
  const auto logits = model.forward(images);
  const auto ce = F::cross_entropy(logits, targets);
  std::vector<torch::Tensor> inputs;
  if (lambda_w > 0) inputs = layer_weights(model);
  const size_t weight_count = inputs.size();
  if (lambda_a > 0)
    for (const auto& [point, activation] : recorded_activations(model)) inputs.push_back(activation);
  const auto grads = torch::autograd::grad({ce}, inputs, {}, /*retain_graph=*/true, /*create_graph=*/true);
  auto penalty = torch::zeros({}, ce.options());
  for (size_t i = 0; i < grads.size(); ++i) penalty = penalty + (i < weight_count ? lambda_w : lambda_a) * norm(grads[i], kind);
  return {logits, ce, penalty};
}

class GradientNormDoubleBackprop : public Regularizer {
 public:
  GradientNormDoubleBackprop(Norm norm, double lambda_w, double lambda_a)
      : norm_(norm), lambda_w_(lambda_w), lambda_a_(lambda_a) {}

  StepResult step(models::ClassifierImpl& model, const torch::Tensor& images, const torch::Tensor& targets) override {
    const auto loss = gradient_norm_penalty(model, images, targets, norm_, lambda_w_, lambda_a_);
    (loss.cross_entropy + loss.penalty).backward();
    return {loss.logits.detach(), loss.cross_entropy.item<double>(), loss.penalty.item<double>()};
  }

 private:
  Norm norm_;
  double lambda_w_, lambda_a_;
};

// CE on the whole batch, the penalty's double backprop on its first `subbatch` images (the
// batch is shuffled). The penalty's forward pass must not move the batch-norm running
// statistics a second time, so they are restored after it.
class GradientNormSubbatch : public Regularizer {
 public:
  GradientNormSubbatch(Norm norm, double lambda_w, double lambda_a, int64_t subbatch)
      : norm_(norm), lambda_w_(lambda_w), lambda_a_(lambda_a), subbatch_(subbatch) {}

  StepResult step(models::ClassifierImpl& model, const torch::Tensor& images, const torch::Tensor& targets) override {
    const auto logits = model.forward(images);
    const auto ce = F::cross_entropy(logits, targets);
    ce.backward();
    const int64_t m = std::min(subbatch_, images.size(0));
    const BufferSnapshot buffers(model);
    const auto sub = gradient_norm_penalty(model, images.narrow(0, 0, m), targets.narrow(0, 0, m), norm_, lambda_w_, lambda_a_);
    sub.penalty.backward();
    buffers.restore(model);
    return {logits.detach(), ce.item<double>(), sub.penalty.item<double>()};
  }

 private:
  Norm norm_;
  double lambda_w_, lambda_a_;
  int64_t subbatch_;
};

class GradientNormFiniteDifference : public Regularizer {
 public:
  GradientNormFiniteDifference(Norm norm, double lambda_w, double lambda_a, double relative_step)
      : norm_(norm), lambda_w_(lambda_w), lambda_a_(lambda_a), relative_step_(relative_step) {}

  StepResult step(models::ClassifierImpl& model, const torch::Tensor& images, const torch::Tensor& targets) override {
    const auto parameters = model.parameters();
    const auto weights = layer_weights(model);
    std::vector<std::pair<models::QuantPoint, torch::Tensor>> activations;
    StepResult result = gradient_pass(model, images, targets, activations);
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> base_grads;
    for (const auto& p : parameters) base_grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
    const auto directions = penalty_directions(weights, activations);
    result.penalty = directions.penalty.item<double>();

    // Pass 2 at (w + h λ_w/κ v_w, a + h λ_a/κ v_a): (g' − g)/h · κ = λ_w H v_w + λ_a H_wa v_a.
    const double kappa = std::max(lambda_w_, lambda_a_);
    const double h = step_size(weights);
    perturbed_gradient_pass(model, images, targets, weights, activations, directions, h, kappa);
    for (size_t i = 0; i < parameters.size(); ++i) {
      auto grad = parameters[i].mutable_grad();
      const auto perturbed = grad.defined() ? grad : torch::zeros_like(parameters[i]);
      const auto total = base_grads[i] + (perturbed - base_grads[i]) * (kappa / h);
      if (grad.defined()) grad.copy_(total);
      else parameters[i].mutable_grad() = total;
    }
    return result;
  }

 private:
  // The penalty's value and the directions whose Hessian products are its gradient.
  struct Directions {
    torch::Tensor penalty;  // on the device: one synchronization reads it
    std::vector<torch::Tensor> weights, activations;
  };

  // Pass 1: the ordinary gradient g at w, and dCE/da at every point (in `activations`).
  StepResult gradient_pass(models::ClassifierImpl& model, const torch::Tensor& images, const torch::Tensor& targets,
                           std::vector<std::pair<models::QuantPoint, torch::Tensor>>& activations) const {
    OptionalRecord record(model, lambda_a_ > 0);
    const auto logits = model.forward(images);
    const auto ce = F::cross_entropy(logits, targets);
    activations = recorded_activations(model);
    for (auto& [point, activation] : activations) activation.retain_grad();
    ce.backward();
    StepResult result;
    result.logits = logits.detach();
    result.cross_entropy = ce.item<double>();
    return result;
  }

  Directions penalty_directions(const std::vector<torch::Tensor>& weights,
                                const std::vector<std::pair<models::QuantPoint, torch::Tensor>>& activations) const {
    Directions out;
    out.penalty = torch::zeros({}, weights.front().options());
    for (const auto& w : weights) {
      out.penalty += lambda_w_ * norm(w.grad(), norm_);
      out.weights.push_back(direction(w.grad()));
    }
    for (const auto& [point, activation] : activations) {
      out.penalty += lambda_a_ * norm(activation.grad(), norm_);
      out.activations.push_back(direction(activation.grad()));
    }
    return out;
  }

  // The finite-difference step h: relative_step times the mean |w| (one synchronization).
  double step_size(const std::vector<torch::Tensor>& weights) const {
    auto weight_abs = torch::zeros({}, weights.front().options());
    double weight_count = 0;
    for (const auto& w : weights) {
      weight_abs += w.abs().sum();
      weight_count += static_cast<double>(w.numel());
    }
    return relative_step_ * weight_abs.item<double>() / weight_count;
  }

  // Pass 2: the gradient g' at the perturbed weights and activations, left in the parameters'
  // grads; the weights and batch-norm statistics are as before afterwards.
  void perturbed_gradient_pass(models::ClassifierImpl& model, const torch::Tensor& images, const torch::Tensor& targets,
                               const std::vector<torch::Tensor>& weights,
                               const std::vector<std::pair<models::QuantPoint, torch::Tensor>>& activations,
                               const Directions& directions, double h, double kappa) const {
    std::vector<torch::Tensor> saved_weights;
    for (const auto& w : weights) saved_weights.push_back(w.clone());
    const BufferSnapshot buffers(model);  // pass 2 must not update BN statistics
    for (size_t i = 0; i < weights.size(); ++i) weights[i].add_(directions.weights[i], h * lambda_w_ / kappa);
    for (const auto& p : model.parameters())
      if (p.grad().defined()) p.grad().zero_();
    {
      torch::AutoGradMode enable_grad(true);
      std::vector<models::QuantPoint> points;
      std::vector<torch::Tensor> shifts;
      for (size_t i = 0; i < activations.size(); ++i) {
        points.push_back(activations[i].first);
        shifts.push_back(directions.activations[i].mul(h * lambda_a_ / kappa));
      }
      models::PerturbScope perturb(points, shifts);
      F::cross_entropy(model.forward(images), targets).backward();
    }
    for (size_t i = 0; i < weights.size(); ++i) weights[i].copy_(saved_weights[i]);
    buffers.restore(model);
  }

  torch::Tensor direction(const torch::Tensor& g) const {
    return norm_ == Norm::kL1 ? g.sign() : g / norm(g, Norm::kL2);
  }

  Norm norm_;
  double lambda_w_, lambda_a_, relative_step_;
};

}  // namespace

std::unique_ptr<Regularizer> make_plain() { return std::make_unique<PlainStep>(); }

namespace {

// The penalized step on every k-th step of an epoch (the first included), with λ scaled by k,
// and the plain step on the others.
class EveryKthStep : public Regularizer {
 public:
  EveryKthStep(std::unique_ptr<Regularizer> penalized, int64_t every)
      : penalized_(std::move(penalized)), plain_(make_plain()), every_(every) {}

  void begin_epoch() override { step_ = 0; }
  StepResult step(models::ClassifierImpl& model, const torch::Tensor& images, const torch::Tensor& targets) override {
    Regularizer& regularizer = step_ % every_ == 0 ? *penalized_ : *plain_;
    ++step_;
    return regularizer.step(model, images, targets);
  }

 private:
  std::unique_ptr<Regularizer> penalized_, plain_;
  int64_t every_;
  int64_t step_ = 0;
};

// Every step of the gradient-norm penalty, with both λs scaled by `scale`.
std::unique_ptr<Regularizer> make_gradient_norm(const RegularizerOptions& options, double scale) {
  const Norm kind = options.penalty() == Penalty::kGradL1 ? Norm::kL1 : Norm::kL2;
  const double lambda_w = scale * options.lambda_w(), lambda_a = scale * options.lambda_a();
  if (options.method() == GradientMethod::kFiniteDifference)
    return std::make_unique<GradientNormFiniteDifference>(kind, lambda_w, lambda_a, options.fd_epsilon());
  if (options.subbatch() > 0) return std::make_unique<GradientNormSubbatch>(kind, lambda_w, lambda_a, options.subbatch());
  return std::make_unique<GradientNormDoubleBackprop>(kind, lambda_w, lambda_a);
}

}  // namespace

std::unique_ptr<Regularizer> make_regularizer(const RegularizerOptions& options) {
  switch (options.penalty()) {
    case Penalty::kNone:
      return make_plain();
    case Penalty::kGradL1:
    case Penalty::kGradL2:
      if (options.lambda_w() == 0 && options.lambda_a() == 0) return make_plain();
      if (options.every() == 1) return make_gradient_norm(options, 1.0);
      return std::make_unique<EveryKthStep>(make_gradient_norm(options, static_cast<double>(options.every())), options.every());
    case Penalty::kDqLipschitz:
      if (options.lambda() == 0) return make_plain();
      return std::make_unique<WeightPenalty>(options.lambda(), lipschitz_penalty);
    case Penalty::kKurtosis: {
      if (options.lambda() == 0) return make_plain();
      const double target = options.kurtosis_target();
      return std::make_unique<WeightPenalty>(options.lambda(),
                                             [target](const torch::Tensor& w) { return kurtosis_penalty(w, target); });
    }
  }
  throw std::logic_error("make_regularizer: a penalty without a step");  // unreachable: the switch is exhaustive
}

GradientNorms measure_gradient_norms(models::ClassifierImpl& model, const torch::Tensor& images,
                                     const torch::Tensor& targets) {
  const bool was_training = model.is_training();
  model.eval();
  GradientNorms out;
  {
    models::RecordScope record(model.quant_points());
    const auto ce = F::cross_entropy(model.forward(images), targets);
    auto inputs = layer_weights(model);
    const auto activations = recorded_activations(model);
    for (const auto& [point, activation] : activations) inputs.push_back(activation);
    const auto grads = torch::autograd::grad({ce}, inputs);
    const auto& layers = model.quant_layers();
    for (size_t i = 0; i < layers.size(); ++i) out.weight_l1.emplace_back(layers[i].name, grads[i].abs().sum().item<double>());
    for (size_t i = 0; i < activations.size(); ++i)
      out.activation_l1.emplace_back(activations[i].first->name(), grads[layers.size() + i].abs().sum().item<double>());
  }
  model.train(was_training);
  return out;
}

}  // namespace qrobust::regularize
