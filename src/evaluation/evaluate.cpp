#include "evaluation/evaluate.h"

#include "data/batches.h"

namespace qrobust::evaluation {

Predictions predict(models::ClassifierImpl& model, const data::LabeledImages& split, const data::DatasetInfo& info,
                      int64_t batch_size, torch::Device device) {
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  data::BatchOptions options;
  options.batch_size = batch_size;
  data::EpochBatches batches(split, info, options, 0, device);
  std::vector<torch::Tensor> logits, targets;
  for (int64_t i = 0; i < batches.size(); ++i) {
    const auto batch = batches.get(i);
    logits.push_back(model.forward(batch.images).cpu());
    targets.push_back(batch.targets.cpu());
  }
  model.train(was_training);
  if (logits.empty()) return {torch::empty({0, 0}), torch::empty({0}, torch::kLong)};
  return {torch::cat(logits), torch::cat(targets)};
}

EvalResult score(const torch::Tensor& logits, const torch::Tensor& targets) {
  EvalResult result;
  result.samples = targets.size(0);
  if (result.samples == 0) return result;
  result.loss = torch::nn::functional::cross_entropy(logits.to(torch::kDouble), targets).item<double>();
  result.accuracy = 100.0 * logits.argmax(1).eq(targets).to(torch::kDouble).mean().item<double>();
  const auto top = std::get<1>(logits.topk(std::min<int64_t>(5, logits.size(1)), 1));
  result.top5 = 100.0 * top.eq(targets.unsqueeze(1)).any(1).to(torch::kDouble).mean().item<double>();
  return result;
}

EvalResult evaluate(models::ClassifierImpl& model, const data::LabeledImages& split, const data::DatasetInfo& info,
                    int64_t batch_size, torch::Device device) {
  const auto predictions = predict(model, split, info, batch_size, device);
  return score(predictions.logits, predictions.targets);
}

}  // namespace qrobust::evaluation
