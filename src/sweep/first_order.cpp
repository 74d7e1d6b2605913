#include "sweep/first_order.h"

#include <numeric>

#include "data/batches.h"

namespace qrobust::sweep {
namespace F = torch::nn::functional;

FirstOrder first_order_gradients(models::ClassifierImpl& model, const data::LabeledImages& split,
                                 const data::DatasetInfo& info, int64_t batch_size, torch::Device device) {
  model.eval();
  const auto& layers = model.quant_layers();
  const auto& points = model.quant_points();
  FirstOrder out;
  for (const auto& layer : layers) out.weight_grads.push_back(torch::zeros_like(layer.weight()));
  // Sums stay on the device until the end (no synchronization per batch); one tensor each.
  std::vector<torch::Tensor> activation_sums;
  for (size_t i = 0; i < points.size(); ++i) activation_sums.push_back(torch::zeros({}, torch::TensorOptions().device(device)));
  data::BatchOptions options;
  options.batch_size = batch_size;
  data::EpochBatches batches(split, info, options, 0, device);
  const double n = static_cast<double>(split.size());
  models::RecordScope record(points);
  for (int64_t b = 0; b < batches.size(); ++b) {
    const auto batch = batches.get(b);
    // Sum of per-sample losses / N: summed over batches this is the gradient of the mean loss.
    // In eval mode the samples do not interact, so the slice of ∂L/∂a for sample i is ∂L_i/∂a_i / N.
    const auto loss = F::cross_entropy(model.forward(batch.images.requires_grad_(true)), batch.targets,
                                       F::CrossEntropyFuncOptions().reduction(torch::kSum)) / n;
    std::vector<torch::Tensor> inputs;
    for (const auto& layer : layers) inputs.push_back(layer.weight());
    for (const auto& point : points) inputs.push_back(point->recorded());
    const auto grads = torch::autograd::grad({loss}, inputs);
    for (size_t i = 0; i < layers.size(); ++i) out.weight_grads[i] += grads[i];
    for (size_t i = 0; i < points.size(); ++i) activation_sums[i] += grads[layers.size() + i].abs().sum();
  }
  for (const auto& sum : activation_sums) out.activation_l1.push_back(sum.item<double>());
  for (auto& g : out.weight_grads) g = g.cpu();
  return out;
}

double BoundTerms::total() const {
  return std::accumulate(layers.begin(), layers.end(), 0.0) + std::accumulate(points.begin(), points.end(), 0.0);
}

BoundTerms first_order_bound(const FirstOrder& gradients, const std::vector<torch::Tensor>& weight_steps,
                             const std::vector<double>& activation_steps) {
  BoundTerms terms;
  for (size_t i = 0; i < weight_steps.size(); ++i) {
    const auto& g = gradients.weight_grads[i];
    const auto per_channel = g.abs().reshape({g.size(0), -1}).sum(1);
    terms.layers.push_back((weight_steps[i] / 2 * per_channel).sum().item<double>());
  }
  for (size_t i = 0; i < activation_steps.size(); ++i)
    terms.points.push_back(activation_steps[i] / 2 * gradients.activation_l1[i]);
  return terms;
}

}  // namespace qrobust::sweep
