#pragma once
// Learning-rate schedules, evaluated per step: linear warm-up, then cosine decay to 0,
// step decay by gamma at milestones, or constant.
#include <torch/torch.h>

#include "config/config.h"

namespace qrobust::train {

// Learning rate for step `step` (0-based) of epoch `epoch` (0-based) with `steps` steps per epoch.
double learning_rate(const config::TrainConfig& train, int64_t epoch, int64_t step, int64_t steps);

// Builds the SGD optimizer the config describes over `parameters`.
torch::optim::SGD make_optimizer(const config::TrainConfig& train, const std::vector<torch::Tensor>& parameters);

void set_learning_rate(torch::optim::SGD& optimizer, double lr);

}  // namespace qrobust::train
