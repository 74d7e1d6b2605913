#include <catch2/catch.hpp>

#include "train/schedule.h"

using namespace qrobust;

TEST_CASE("cosine schedule with warm-up") {
  config::TrainConfig t;
  t.epochs = 10;
  t.lr = 0.1;
  t.warmup_epochs = 2;
  t.schedule = config::Schedule::kCosine;
  CHECK(train::learning_rate(t, 0, 0, 10) == Approx(0.1 * 0.1 / 2));  // first step of warm-up
  CHECK(train::learning_rate(t, 1, 0, 10) == Approx(0.1 * 1.1 / 2));
  CHECK(train::learning_rate(t, 2, 0, 10) == Approx(0.1));  // warm-up done: cosine starts at lr
  CHECK(train::learning_rate(t, 6, 0, 10) == Approx(0.05));  // halfway through the cosine
  CHECK(train::learning_rate(t, 9, 9, 10) < 0.001);
}

TEST_CASE("multistep schedule multiplies by gamma at each milestone") {
  config::TrainConfig t;
  t.epochs = 10;
  t.lr = 1.0;
  t.schedule = config::Schedule::kMultistep;
  t.milestones = {3, 6};
  t.gamma = 0.1;
  CHECK(train::learning_rate(t, 2, 5, 10) == Approx(1.0));
  CHECK(train::learning_rate(t, 3, 0, 10) == Approx(0.1));
  CHECK(train::learning_rate(t, 9, 0, 10) == Approx(0.01));
}

TEST_CASE("the optimizer follows the config and takes the scheduled rate") {
  config::TrainConfig t;
  t.momentum = 0.5;
  t.nesterov = true;
  t.weight_decay = 0.01;
  auto p = torch::ones({2}, torch::requires_grad());
  auto optimizer = train::make_optimizer(t, {p});
  train::set_learning_rate(optimizer, 0.25);
  const auto& options = static_cast<const torch::optim::SGDOptions&>(optimizer.param_groups()[0].options());
  CHECK(options.lr() == 0.25);
  CHECK(options.momentum() == 0.5);
  CHECK(options.nesterov());
  CHECK(options.weight_decay() == 0.01);
}
