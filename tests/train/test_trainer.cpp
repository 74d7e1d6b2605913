#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "data/datasets.h"
#include "io/checkpoint.h"
#include "models/registry.h"
#include "test_support.h"
#include "train/trainer.h"
#include "util/atomic_file.h"
#include "util/provenance.h"

using namespace qrobust;
namespace fs = std::filesystem;

namespace {
// Requests a stop when training reaches (epoch, step).
class StopAt : public train::TrainObserver {
 public:
  StopAt(int64_t epoch, int64_t step, std::atomic<bool>& flag) : epoch_(epoch), step_(step), flag_(flag) {}
  void on_epoch_start(int64_t epoch, int64_t, int64_t, int64_t) override { current_ = epoch; }
  void on_step(int64_t step, int64_t, double) override {
    if (current_ == epoch_ && step == step_) flag_ = true;
  }

 private:
  int64_t epoch_, step_, current_ = 0;
  std::atomic<bool>& flag_;
};

std::vector<nlohmann::json> read_log(const std::string& run_dir) {
  std::ifstream in(train::log_path(run_dir));
  std::vector<nlohmann::json> records;
  for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
  return records;
}

std::map<std::string, torch::Tensor> final_weights(const config::ExperimentConfig& config, const std::string& run_dir) {
  auto model = models::build_model(config.model, data::dataset_info(config.data).input(), config.seed, torch::kCPU);
  io::load_checkpoint(train::checkpoint_path(run_dir), *model, nullptr);
  std::map<std::string, torch::Tensor> weights;
  for (const auto& item : model->named_parameters()) weights[item.key()] = item.value().clone();
  for (const auto& item : model->named_buffers()) weights[item.key()] = item.value().clone();
  return weights;
}
}  // namespace

TEST_CASE("training lowers the loss on a small learnable set and writes the run directory") {
  testing::TempDir data, runs;
  testing::write_cifar10(data.path(), 96);
  auto config = testing::tiny_config(data.path(), 6);
  config.train.lr = 0.1;
  train::TrainOptions options;
  options.run_dir = runs.file("run");
  const auto metrics = train::train(config, options);
  const auto log = read_log(options.run_dir);
  REQUIRE(log.size() == 6);
  CHECK(log.back()["train"]["loss"].get<double>() < 0.6 * log.front()["train"]["loss"].get<double>());
  CHECK(metrics["test"]["accuracy"].get<double>() > 30.0);  // chance is 10%
  CHECK(log.back()["images_per_second"].get<double>() > 0);
  CHECK(config::parse_config(util::read_file(train::config_path(options.run_dir)), "x").name == "tiny");
  CHECK(nlohmann::json::parse(util::read_file(train::metrics_path(options.run_dir)))["epochs"] == 6);
  CHECK(io::read_checkpoint_info(train::checkpoint_path(options.run_dir)).epoch == 6);

  // Starting again into the same directory without --resume is refused and changes nothing.
  const auto checkpoint = util::read_file(train::checkpoint_path(options.run_dir));
  CHECK_THROWS_AS(train::train(config, options), UsageError);
  CHECK(util::read_file(train::checkpoint_path(options.run_dir)) == checkpoint);
}

TEST_CASE("the numerics fingerprint repeats here, follows the arithmetic of a step, and is what a run records") {
  testing::TempDir data, runs;
  testing::write_cifar10(data.path(), 32);
  auto config = testing::tiny_config(data.path(), 1);
  torch::manual_seed(5);
  const auto expected_draw = torch::rand({4});
  torch::manual_seed(5);
  const auto fingerprint = train::numerics_fingerprint(config, torch::kCPU);
  CHECK(torch::equal(torch::rand({4}), expected_draw));  // the global generator is left as it was
  CHECK(fingerprint.size() == 40);
  CHECK(train::numerics_fingerprint(config, torch::kCPU) == fingerprint);
  auto other_seed = config;
  other_seed.seed = 99;  // the same arithmetic for every seed of an experiment
  CHECK(train::numerics_fingerprint(other_seed, torch::kCPU) == fingerprint);
  // What changes a step's arithmetic changes the fingerprint: the weights after SGD, the shapes.
  auto other_lr = config;
  other_lr.train.lr = config.train.lr / 2;
  CHECK(train::numerics_fingerprint(other_lr, torch::kCPU) != fingerprint);
  auto other_batch = config;
  other_batch.data.batch_size = config.data.batch_size + 1;
  CHECK(train::numerics_fingerprint(other_batch, torch::kCPU) != fingerprint);
  auto other_eval_batch = config;
  other_eval_batch.data.eval_batch_size = config.data.eval_batch_size + 1;
  CHECK(train::numerics_fingerprint(other_eval_batch, torch::kCPU) != fingerprint);

  train::TrainOptions options;
  options.run_dir = runs.file("run");
  CHECK(train::train(config, options)["numerics_fingerprint"] == fingerprint);
  CHECK(nlohmann::json::parse(util::read_file(train::metrics_path(options.run_dir)))["numerics_fingerprint"] ==
        fingerprint);
}

TEST_CASE("a run interrupted mid-epoch and resumed ends with the same weights as an uninterrupted one") {
  testing::TempDir data, runs;
  testing::write_cifar10(data.path(), 32);
  auto plain = testing::tiny_config(data.path(), 3);
  plain.data.augment = true;
  plain.data.val_size = 20;
  // 4 steps an epoch: a penalty every 3rd step must count them from each epoch's start.
  auto amortized = plain;
  amortized.regularizer.penalty(regularize::Penalty::kGradL1).lambda_w(0.01).lambda_a(0.01).every(3);
  for (const auto& config : {plain, amortized}) {
    const std::string label = config.regularizer.name();
    INFO(label);

    train::TrainOptions straight;
    straight.run_dir = runs.file(label + "_straight");
    train::train(config, straight);

    std::atomic<bool> stop{false};
    StopAt stop_at(/*epoch=*/1, /*step=*/2, stop);
    train::TrainOptions interrupted;
    interrupted.run_dir = runs.file(label + "_resumed");
    interrupted.observer = &stop_at;
    interrupted.stop = &stop;
    CHECK_THROWS_AS(train::train(config, interrupted), train::TrainingInterrupted);
    CHECK(io::read_checkpoint_info(train::checkpoint_path(interrupted.run_dir)).epoch == 1);

    train::TrainOptions resumed;
    resumed.run_dir = interrupted.run_dir;
    resumed.resume = true;
    train::train(config, resumed);

    const auto a = final_weights(config, straight.run_dir), b = final_weights(config, resumed.run_dir);
    REQUIRE(a.size() == b.size());
    for (const auto& [name, tensor] : a) {
      INFO(name);
      CHECK(torch::equal(tensor, b.at(name)));
    }
    const auto log = read_log(resumed.run_dir);
    REQUIRE(log.size() == 3);
    CHECK(log[2]["test"] == read_log(straight.run_dir)[2]["test"]);
    CHECK(log[2].contains("val"));

    // Resuming with a different experiment is refused.
    auto changed = config;
    changed.train.lr = 0.5;
    CHECK_THROWS_WITH(train::train(changed, resumed), Catch::Contains("differs from the run's config.yaml"));
  }
}

TEST_CASE("a run trained again from its first epoch drops the metrics of the weights it replaces") {
  testing::TempDir data, runs;
  testing::write_cifar10(data.path(), 32);
  const auto config = testing::tiny_config(data.path(), 2);
  train::TrainOptions options;
  options.run_dir = runs.file("run");
  train::train(config, options);
  // A fresh machine has the committed results but not the checkpoint; a kill after the new
  // first epoch must not leave the old metrics beside a new partial checkpoint.
  fs::remove(train::checkpoint_path(options.run_dir));
  std::atomic<bool> stop{false};
  StopAt stop_at(/*epoch=*/1, /*step=*/1, stop);
  options.resume = true;
  options.observer = &stop_at;
  options.stop = &stop;
  CHECK_THROWS_AS(train::train(config, options), train::TrainingInterrupted);
  CHECK(io::read_checkpoint_info(train::checkpoint_path(options.run_dir)).epoch == 1);  // of the new weights
  CHECK_FALSE(fs::exists(train::metrics_path(options.run_dir)));
  CHECK_FALSE(train::inspect_run(options.run_dir, config).complete);
}

TEST_CASE("a loss that becomes NaN stops the run and keeps the last good checkpoint") {
  testing::TempDir data, runs;
  testing::write_cifar10(data.path(), 32);
  auto config = testing::tiny_config(data.path(), 3);
  // The learning rate explodes after epoch 1.
  config.train.schedule = config::Schedule::kMultistep;
  config.train.milestones = {1};
  config.train.gamma = 1e30;
  train::TrainOptions options;
  options.run_dir = runs.file("run");
  std::string checkpoint_after_epoch_1;
  CHECK_THROWS_WITH(train::train(config, options),
                    Catch::Contains("training diverged: the loss is") && Catch::Contains("checkpoint after epoch 1 is kept"));
  CHECK(io::read_checkpoint_info(train::checkpoint_path(options.run_dir)).epoch == 1);
  const auto weights = final_weights(config, options.run_dir);
  for (const auto& [name, tensor] : weights) CHECK(torch::isfinite(tensor).all().item<bool>());
}

TEST_CASE("a baseline stopped after epoch K and branched to the end equals one uninterrupted schedule") {
  testing::TempDir data, runs;
  testing::write_cifar10(data.path(), 32);
  auto config = testing::tiny_config(data.path(), 3);
  train::TrainOptions whole;
  whole.run_dir = runs.file("whole");
  train::train(config, whole);

  auto stopped = config;
  stopped.train.stop_after = 1;
  train::TrainOptions first;
  first.run_dir = runs.file("baseline");
  train::train(stopped, first);
  CHECK(read_log(first.run_dir).size() == 1);
  CHECK(io::read_checkpoint_info(train::checkpoint_path(first.run_dir)).epoch == 1);

  auto branched = config;
  branched.train.branch_from = train::checkpoint_path(first.run_dir);
  train::TrainOptions rest;
  rest.run_dir = runs.file("branch");
  train::train(branched, rest);
  const auto log = read_log(rest.run_dir);
  REQUIRE(log.size() == 2);
  CHECK(log.front()["epoch"] == 2);
  // metrics.json names the weights and the trunk they grew from by their checkpoints' SHA-1.
  const auto trunk_metrics = nlohmann::json::parse(util::read_file(train::metrics_path(first.run_dir)));
  const auto branch_metrics = nlohmann::json::parse(util::read_file(train::metrics_path(rest.run_dir)));
  CHECK(trunk_metrics["checkpoint_sha1"] == util::file_sha1(train::checkpoint_path(first.run_dir)));
  CHECK(branch_metrics["trunk_sha1"] == trunk_metrics["checkpoint_sha1"]);
  CHECK(branch_metrics["checkpoint_sha1"] == util::file_sha1(train::checkpoint_path(rest.run_dir)));
  CHECK(branch_metrics["checkpoint_sha1"] != branch_metrics["trunk_sha1"]);
  CHECK_FALSE(trunk_metrics.contains("trunk_sha1"));
  // The same learning rates as the uninterrupted schedule, and the same weights at its end.
  CHECK(log.front()["lr"] == read_log(whole.run_dir)[1]["lr"]);
  const auto expected = final_weights(config, whole.run_dir), actual = final_weights(config, rest.run_dir);
  for (const auto& [name, tensor] : expected) {
    INFO(name);
    CHECK(torch::equal(actual.at(name), tensor));
  }

  // A checkpoint at or past the run's end is a usage error.
  auto late = config;
  late.train.branch_from = train::checkpoint_path(whole.run_dir);
  train::TrainOptions too_late;
  too_late.run_dir = runs.file("late");
  CHECK_THROWS_WITH(train::train(late, too_late), Catch::Contains("is after epoch 3, but this run ends after epoch 3"));
}

TEST_CASE("init_from starts a new run from another run's weights") {
  testing::TempDir data, runs;
  testing::write_cifar10(data.path(), 32);
  auto config = testing::tiny_config(data.path(), 1);
  train::TrainOptions first;
  first.run_dir = runs.file("first");
  const auto before = train::train(config, first);

  auto finetune = config;
  finetune.train.init_from = train::checkpoint_path(first.run_dir);
  finetune.train.lr = 1e-12;  // the weights barely move, so accuracy carries over
  train::TrainOptions second;
  second.run_dir = runs.file("second");
  const auto after = train::train(finetune, second);
  CHECK(after["test"]["accuracy"].get<double>() == Approx(before["test"]["accuracy"].get<double>()).margin(5.0));

  auto wrong = finetune;
  wrong.model.name("resnet14");
  train::TrainOptions third;
  third.run_dir = runs.file("third");
  CHECK_THROWS_WITH(train::train(wrong, third), Catch::Contains("holds resnet8"));
}

TEST_CASE("the penalty starts at start_epoch and every epoch logs per-layer gradient norms") {
  testing::TempDir data, runs;
  testing::write_cifar10(data.path(), 32);
  auto config = testing::tiny_config(data.path(), 2);
  config.regularizer.penalty(regularize::Penalty::kGradL1).lambda_w(0.01).lambda_a(0.01).start_epoch(1);
  train::TrainOptions options;
  options.run_dir = runs.file("run");
  train::train(config, options);
  const auto log = read_log(options.run_dir);
  REQUIRE(log.size() == 2);
  CHECK(log[0]["train"]["penalty_active"] == false);
  CHECK(log[0]["train"]["penalty"] == 0.0);
  CHECK(log[1]["train"]["penalty_active"] == true);
  CHECK(log[1]["train"]["penalty"].get<double>() > 0);
  CHECK(log[1]["train"]["loss"].get<double>() ==
        Approx(log[1]["train"]["cross_entropy"].get<double>() + log[1]["train"]["penalty"].get<double>()));
  for (const auto& record : log) {
    const auto& norms = record["gradient_norms"];
    CHECK(norms["weight_l1"].size() == 8);  // resnet8: stem, 6 block convs, fc
    CHECK(norms["weight_l1"]["conv1"].get<double>() > 0);
    CHECK(norms["weight_l1"]["fc"].get<double>() > 0);
    CHECK(norms["activation_l1"].size() == 8);  // stem, two per block, pooled
    CHECK(norms["activation_l1"]["layer3.0.act2"].get<double>() > 0);
  }
}

TEST_CASE("a penalty that overflows stops the run like a NaN loss") {
  testing::TempDir data, runs;
  testing::write_cifar10(data.path(), 32);
  auto config = testing::tiny_config(data.path(), 1);
  config.regularizer.penalty(regularize::Penalty::kDqLipschitz).lambda(1e308);
  train::TrainOptions options;
  options.run_dir = runs.file("run");
  CHECK_THROWS_WITH(train::train(config, options),
                    Catch::Contains("training diverged: the penalty is inf") && Catch::Contains("no checkpoint was written"));
}

TEST_CASE("quantization-aware fine-tuning keeps batch-norm statistics frozen and trains the weights") {
  testing::TempDir data, runs;
  testing::write_cifar10(data.path(), 32);
  auto config = testing::tiny_config(data.path(), 1);
  config.quant.calibration_samples(32);
  train::TrainOptions first;
  first.run_dir = runs.file("float");
  train::train(config, first);

  auto quant_aware = config;
  quant_aware.train.init_from = train::checkpoint_path(first.run_dir);
  quant_aware.quant_aware.weight_bits = 4;
  quant_aware.quant_aware.act_bits = 4;
  train::TrainOptions second;
  second.run_dir = runs.file("ste");
  train::train(quant_aware, second);

  const auto before = final_weights(config, first.run_dir);
  const auto after = final_weights(config, second.run_dir);
  int moved = 0;
  for (const auto& [name, value] : before) {
    INFO(name);
    if (name.find("running_") != std::string::npos) CHECK(torch::equal(value, after.at(name)));
    if (name.find("conv") != std::string::npos && !torch::equal(value, after.at(name))) ++moved;
  }
  CHECK(moved > 0);
}
