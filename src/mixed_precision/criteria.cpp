#include "mixed_precision/criteria.h"

#include <chrono>
#include <set>

#include "data/batches.h"
#include "evaluation/evaluate.h"
#include "sweep/first_order.h"

namespace qrobust::mixed_precision {
namespace F = torch::nn::functional;
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Every bit-width some element may take.
std::set<int> all_bits(const std::vector<std::vector<int>>& candidates) {
  std::set<int> bits;
  for (const auto& element : candidates) bits.insert(element.begin(), element.end());
  return bits;
}

bool has(const std::vector<int>& candidates, int bits) {
  return std::find(candidates.begin(), candidates.end(), bits) != candidates.end();
}

std::vector<std::map<int, double>> zero_scores(const std::vector<std::vector<int>>& candidates) {
  std::vector<std::map<int, double>> scores(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i)
    for (const int b : candidates[i]) scores[i][b] = 0.0;
  return scores;
}

// Per layer and per point: (δ/2)·‖∂L/∂·‖₁ at each candidate bit-width, from one gradient pass.
void score_first_order(const ScoringInputs& in, const std::vector<std::vector<int>>& layer_bits,
                       const std::vector<std::vector<int>>& point_bits, ElementScores& out) {
  auto& quantizer = *in.quantizer;
  auto& model = quantizer.model();
  const auto gradients = sweep::first_order_gradients(model, *in.images, *in.info, in.batch_size, in.device);
  out.passes += 1;
  const size_t layers = layer_bits.size(), points = point_bits.size();
  for (const int b : all_bits(layer_bits)) {
    const auto bound = sweep::first_order_bound(gradients, quantizer.weight_steps(std::vector<int>(layers, b)), {});
    for (size_t l = 0; l < layers; ++l)
      if (has(layer_bits[l], b)) out.layers[l][b] = bound.layers[l];
  }
  for (const int b : all_bits(point_bits)) {
    const auto bound = sweep::first_order_bound(gradients, {}, quantizer.activation_steps(std::vector<int>(points, b), 0));
    for (size_t p = 0; p < points; ++p)
      if (has(point_bits[p], b)) out.points[p][b] = bound.points[p];
  }
}

// HAWQ-v2's second-order term from Hutchinson's Hessian trace estimates.
void score_hessian_trace(const ScoringInputs& in, const std::vector<std::vector<int>>& layer_bits,
                         const std::vector<std::vector<int>>& point_bits, int64_t samples, ElementScores& out,
                         const std::function<void(int64_t, int64_t)>& progress) {
  auto& quantizer = *in.quantizer;
  auto& model = quantizer.model();
  model.eval();
  const auto& layers = model.quant_layers();
  const auto& points = model.quant_points();
  std::vector<double> traces(layers.size() + points.size(), 0.0);
  auto generator = at::detail::createCPUGenerator(in.seed);
  data::BatchOptions options;
  options.batch_size = in.batch_size;
  data::EpochBatches batches(*in.images, *in.info, options, 0, in.device);
  const double n = static_cast<double>(in.images->size());
  {
    const models::RecordScope record(points);
    for (int64_t b = 0; b < batches.size(); ++b) {
      const auto batch = batches.get(b);
      // Summed over batches, these are the Hessian traces of the mean loss over the images.
      const auto loss = F::cross_entropy(model.forward(batch.images.requires_grad_(true)), batch.targets,
                                         F::CrossEntropyFuncOptions().reduction(torch::kSum)) / n;
      std::vector<torch::Tensor> inputs;
      for (const auto& layer : layers) inputs.push_back(layer.weight());
      for (const auto& point : points) inputs.push_back(point->recorded());
      const auto probes = hutchinson_traces(loss, inputs, samples, generator);
      for (size_t i = 0; i < traces.size(); ++i) traces[i] += probes[i];
      if (progress) progress(b + 1, batches.size());
    }
  }
  out.passes += 1 + samples;  // each probe, and the gradient graph, over every batch
  torch::NoGradGuard no_grad;
  for (size_t l = 0; l < layers.size(); ++l) {
    const auto weight = quantizer.quantized_weight(l, quant::kFloatBits);
    const double per_weight = traces[l] / static_cast<double>(weight.numel());
    for (const int b : layer_bits[l]) {
      const double squared_error = (quantizer.quantized_weight(l, b) - weight).pow(2).sum().item<double>();
      out.layers[l][b] = per_weight * squared_error / 2;
    }
  }
  for (const int b : all_bits(point_bits)) {
    const auto steps = quantizer.activation_steps(std::vector<int>(points.size(), b), 0);
    for (size_t p = 0; p < points.size(); ++p)
      if (has(point_bits[p], b)) out.points[p][b] = traces[layers.size() + p] * steps[p] * steps[p] / 24;
  }
}

// One-in loss increases, one evaluation per element and bit-width.
void score_measured(const ScoringInputs& in, const std::vector<std::vector<int>>& layer_bits,
                    const std::vector<std::vector<int>>& point_bits, ElementScores& out,
                    const std::function<void(int64_t, int64_t)>& progress) {
  auto& quantizer = *in.quantizer;
  auto& model = quantizer.model();
  const auto none = quantizer.float_plan();
  auto loss_of = [&](const quant::BitPlan& plan) {
    const quant::QuantizedModelScope quantized(quantizer, plan, 0);
    ++out.passes;
    return evaluation::evaluate(model, *in.images, *in.info, in.batch_size, in.device).loss;
  };
  const double float_loss = loss_of(none);
  int64_t total = 0, done = 0;
  for (const auto& c : layer_bits) total += static_cast<int64_t>(c.size());
  for (const auto& c : point_bits) total += static_cast<int64_t>(c.size());
  for (size_t l = 0; l < layer_bits.size(); ++l)
    for (const int b : layer_bits[l]) {
      auto plan = none;
      plan.layer_bits[l] = b;
      out.layers[l][b] = b == quant::kFloatBits ? 0.0 : loss_of(plan) - float_loss;
      if (progress) progress(++done, total);
    }
  for (size_t p = 0; p < point_bits.size(); ++p)
    for (const int b : point_bits[p]) {
      auto plan = none;
      plan.point_bits[p] = b;
      out.points[p][b] = b == quant::kFloatBits ? 0.0 : loss_of(plan) - float_loss;
      if (progress) progress(++done, total);
    }
}

}  // namespace

std::vector<double> hutchinson_traces(const torch::Tensor& loss, const std::vector<torch::Tensor>& inputs,
                                      int64_t samples, at::Generator& generator) {
  const auto grads = torch::autograd::grad({loss}, inputs, {}, /*retain_graph=*/true, /*create_graph=*/true);
  std::vector<double> traces(inputs.size(), 0.0);
  for (int64_t k = 0; k < samples; ++k) {
    std::vector<torch::Tensor> probes;
    auto dot = torch::zeros({}, loss.options());
    for (size_t i = 0; i < inputs.size(); ++i) {
      // Rademacher ±1, drawn on the CPU so that a seed gives the same probes on every device.
      probes.push_back((torch::randint(0, 2, inputs[i].sizes(), generator, torch::kFloat) * 2 - 1).to(inputs[i].options()));
      dot = dot + (grads[i] * probes[i]).sum();
    }
    const auto products = torch::autograd::grad({dot}, inputs, {}, /*retain_graph=*/k + 1 < samples,
                                                /*create_graph=*/false, /*allow_unused=*/true);
    for (size_t i = 0; i < inputs.size(); ++i)
      if (products[i].defined()) traces[i] += (probes[i] * products[i]).sum().item<double>() / static_cast<double>(samples);
  }
  return traces;
}

ElementScores score_elements(Criterion criterion, const ScoringInputs& inputs,
                             const std::vector<std::vector<int>>& layer_bits,
                             const std::vector<std::vector<int>>& point_bits, int64_t hutchinson_samples,
                             const std::function<void(int64_t, int64_t)>& progress) {
  const auto start = std::chrono::steady_clock::now();
  ElementScores out;
  out.layers = zero_scores(layer_bits);
  out.points = zero_scores(point_bits);
  switch (criterion) {
    case Criterion::kFirstOrder:
      score_first_order(inputs, layer_bits, point_bits, out);
      break;
    case Criterion::kHessianTrace:
      score_hessian_trace(inputs, layer_bits, point_bits, hutchinson_samples, out, progress);
      break;
    case Criterion::kMeasured:
      score_measured(inputs, layer_bits, point_bits, out, progress);
      break;
  }
  out.seconds = seconds_since(start);
  return out;
}

}  // namespace qrobust::mixed_precision
