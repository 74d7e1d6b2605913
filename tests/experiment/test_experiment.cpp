#include <catch2/catch.hpp>

#include <filesystem>

#include "experiment/experiment.h"
#include "test_support.h"
#include "train/checkpoint.h"
#include "util/atomic_file.h"

using namespace qrobust;
namespace fs = std::filesystem;

namespace {

// A base config file for the tiny CIFAR files in `data`, with a validation split.
std::string write_base(const testing::TempDir& dir, const std::string& data) {
  auto config = testing::tiny_config(data, 1);
  config.data.val_size = 32;
  config.quant.calibration_samples = 32;
  util::write_file_atomically(dir.file("base.yaml"), config::to_yaml(config));
  return dir.file("base.yaml");
}

std::string experiment_text(const std::string& base) {
  return "name: tiny_exp\n"
         "base: " + base + "\n"
         "baseline: true\n"
         "finetune: {train.epochs: 1, train.lr: 0.01}\n"
         "variants:\n"
         "  none: {}\n"
         "  ste@4: {quant_aware.weight_bits: 4, quant_aware.act_bits: 4}\n"
         "sweep:\n"
         "  weight_bits: [8, 4]\n"
         "  act_bits: [8, 4]\n"
         "  splits: [val, test]\n"
         "  quantizers:\n"
         "    per_tensor: {}\n"
         "    per_channel: {quant.weight_granularity: per_channel}\n";
}

}  // namespace

TEST_CASE("an experiment trains a baseline once, fine-tunes and sweeps each variant, and tabulates them") {
  testing::TempDir data, work;
  testing::write_cifar10(data.path(), 48);
  const auto base = write_base(work, data.path());
  util::write_file_atomically(work.file("exp.yaml"), experiment_text(base));
  const auto experiment = experiment::load_experiment(work.file("exp.yaml"), work.file("results"));
  REQUIRE(experiment.runs.size() == 3);
  CHECK(experiment.runs[0].name == "baseline");
  CHECK(experiment.runs[2].config.quant_aware.weight_bits == 4);
  CHECK(experiment.runs[2].config.train.init_from == work.file("results") + "/tiny_exp/baseline/checkpoint.pt");
  CHECK(experiment.runs[1].config.train.lr == 0.01);
  CHECK(experiment.runs[0].config.train.lr == 0.05);
  CHECK_THAT(experiment::describe_plan(experiment), Catch::Contains("ste@4: train 1 of 1 epochs from"));

  // A stop request before the first step: nothing complete, and the next call resumes.
  std::atomic<bool> stop{true};
  experiment::RunOptions stopped;
  stopped.stop = &stop;
  CHECK_THROWS_AS(experiment::run_experiment(experiment, stopped), train::TrainingInterrupted);
  CHECK_FALSE(fs::exists(work.file("results/tiny_exp/table.json")));

  const auto table = experiment::run_experiment(experiment, {});
  CHECK(table["columns"] == nlohmann::json({"fp32", "w8a8", "w4a4"}));
  REQUIRE(table["tables"].size() == 4);  // 2 quantizers x 2 splits
  const auto& first = table["tables"][0];
  CHECK(first["quantizer"] == "per_tensor");
  CHECK(first["split"] == "val");
  REQUIRE(first["rows"].size() == 3);
  // The table's numbers are the variants' sweep files'.
  const auto sweep = nlohmann::json::parse(util::read_file(work.file("results/tiny_exp/ste@4/sweep_per_tensor_val.json")));
  CHECK(first["rows"][2]["accuracy"]["w4a4"] == sweep["rows"][2]["accuracy"]);
  CHECK(sweep["header"]["split"] == "val");
  CHECK(sweep["header"]["samples"] == 32);
  CHECK(nlohmann::json::parse(util::read_file(work.file("results/tiny_exp/ste@4/sweep_per_channel_test.json")))["header"]["weight_granularity"] ==
        "per_channel");
  CHECK(fs::exists(work.file("results/tiny_exp/table.md")));
  CHECK(train::read_checkpoint_info(work.file("results/tiny_exp/none/checkpoint.pt")).epoch == 1);

  // Everything complete: a re-run trains and sweeps nothing.
  const auto checkpoint_time = fs::last_write_time(work.file("results/tiny_exp/none/checkpoint.pt"));
  const auto sweep_time = fs::last_write_time(work.file("results/tiny_exp/none/sweep_per_tensor_test.json"));
  CHECK(experiment::run_experiment(experiment, {}) == table);
  CHECK(fs::last_write_time(work.file("results/tiny_exp/none/checkpoint.pt")) == checkpoint_time);
  CHECK(fs::last_write_time(work.file("results/tiny_exp/none/sweep_per_tensor_test.json")) == sweep_time);
  CHECK_THAT(experiment::describe_plan(experiment), Catch::Contains("none: trained; 0 sweeps to run"));
}

TEST_CASE("experiment files with mistakes are one-line config errors that name the file and the part") {
  testing::TempDir work;
  const auto base = write_base(work, work.path());
  auto error_for = [&](const std::string& text) {
    util::write_file_atomically(work.file("bad.yaml"), text);
    try {
      experiment::load_experiment(work.file("bad.yaml"), work.file("results"));
    } catch (const config::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string head = "base: " + base + "\n";
  CHECK_THAT(error_for(head + "variants: {none: {}}\ncolour: red\n"), Catch::Contains("bad.yaml:3: colour: unknown key"));
  CHECK_THAT(error_for("variants: {none: {}}\n"), Catch::Contains("base: is required"));
  CHECK_THAT(error_for(head), Catch::Contains("variants: is required"));
  CHECK_THAT(error_for(head + "variants: {x: {regularizer.lambda_w: -1}}\n"),
             Catch::Contains("variant \"x\"") && Catch::Contains("regularizer.lambda_w"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nsweep: {quantizers: {q: {train.lr: 1}}}\n"),
             Catch::Contains("sweep.quantizers.q: may only set quant.* keys, got train.lr"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nsweep: {splits: [train]}\n"), Catch::Contains("expected val or test"));
  CHECK_THAT(error_for(head + "variants: {a/b: {}}\n"), Catch::Contains("variant name \"a/b\""));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nfinetune: {train.epochs: 1}\n"), Catch::Contains("set baseline: true"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nsweep: {weight_bits: [1]}\n"), Catch::Contains("sweep.weight_bits"));
  CHECK_THAT(error_for("base: " + work.file("missing.yaml") + "\nvariants: {x: {}}\n"), Catch::Contains("config file not found"));
}
