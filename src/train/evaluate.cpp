#include "train/evaluate.h"

#include "data/batches.h"

namespace qrobust::train {

torch::Tensor predict(models::ClassifierImpl& model, const data::LabeledImages& split, const data::DatasetInfo& info,
                      int64_t batch_size, torch::Device device) {
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  data::BatchOptions options;
  options.batch_size = batch_size;
  data::EpochBatches batches(split, info, options, 0, device);
  std::vector<torch::Tensor> logits;
  for (int64_t i = 0; i < batches.size(); ++i) logits.push_back(model.forward(batches.get(i).images).cpu());
  model.train(was_training);
  return torch::cat(logits);
}

EvalResult evaluate(models::ClassifierImpl& model, const data::LabeledImages& split, const data::DatasetInfo& info,
                    int64_t batch_size, torch::Device device) {
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  data::BatchOptions options;
  options.batch_size = batch_size;
  data::EpochBatches batches(split, info, options, 0, device);
  // Sums stay on the device; one synchronization at the end.
  auto loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
  auto correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(device));
  for (int64_t i = 0; i < batches.size(); ++i) {
    const auto batch = batches.get(i);
    const auto logits = model.forward(batch.images);
    loss_sum += torch::nn::functional::cross_entropy(
                    logits, batch.targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .to(torch::kDouble);
    correct += logits.argmax(1).eq(batch.targets).sum();
  }
  model.train(was_training);
  EvalResult result;
  result.samples = split.size();
  if (result.samples > 0) {
    result.loss = loss_sum.item<double>() / static_cast<double>(result.samples);
    result.accuracy = 100.0 * static_cast<double>(correct.item<int64_t>()) / static_cast<double>(result.samples);
  }
  return result;
}

}  // namespace qrobust::train
