#include "train/schedule.h"

#include <cmath>

namespace qrobust::train {

double learning_rate(const config::TrainConfig& train, int64_t epoch, int64_t step, int64_t steps) {
  const double t = static_cast<double>(epoch) + static_cast<double>(step) / static_cast<double>(steps);
  if (t < train.warmup_epochs) return train.lr * (t + 1.0 / static_cast<double>(steps)) / train.warmup_epochs;
  if (train.schedule == config::Schedule::kCosine) {
    const double progress = (t - train.warmup_epochs) / (static_cast<double>(train.epochs) - train.warmup_epochs);
    return 0.5 * train.lr * (1.0 + std::cos(M_PI * progress));
  }
  if (train.schedule == config::Schedule::kMultistep) {
    double lr = train.lr;
    for (int64_t milestone : train.milestones)
      if (epoch >= milestone) lr *= train.gamma;
    return lr;
  }
  return train.lr;
}

torch::optim::SGD make_optimizer(const config::TrainConfig& train, const std::vector<torch::Tensor>& parameters) {
  return torch::optim::SGD(parameters, torch::optim::SGDOptions(train.lr)
                                           .momentum(train.momentum)
                                           .nesterov(train.nesterov)
                                           .weight_decay(train.weight_decay));
}

void set_learning_rate(torch::optim::SGD& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
}

}  // namespace qrobust::train
