#pragma once
// Accuracy and loss of a model on a split, in eval mode (batch-norm running statistics).
#include <torch/torch.h>

#include "data/datasets.h"
#include "models/classifier.h"

namespace qrobust::evaluation {

struct EvalResult {
  double loss = 0;      // mean cross-entropy
  double accuracy = 0;  // top-1, percent
  double top5 = 0;      // top-5, percent
  int64_t samples = 0;
};

struct Predictions {
  torch::Tensor logits;   // CPU, one row per image read
  torch::Tensor targets;  // CPU, their labels (a JPEG split leaves out unreadable files)
};

// Logits for every image of the split, in order (eval mode, no gradients).
Predictions predict(models::ClassifierImpl& model, const data::LabeledImages& split, const data::DatasetInfo& info,
                      int64_t batch_size, torch::Device device);

// Loss and accuracies of logits against labels.
EvalResult score(const torch::Tensor& logits, const torch::Tensor& targets);

// score() of predict()
EvalResult evaluate(models::ClassifierImpl& model, const data::LabeledImages& split, const data::DatasetInfo& info,
                    int64_t batch_size, torch::Device device);

}  // namespace qrobust::evaluation
