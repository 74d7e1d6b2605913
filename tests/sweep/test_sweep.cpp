#include <catch2/catch.hpp>

#include "sweep/sweep.h"
#include "test_support.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/trainer.h"
#include "util/atomic_file.h"

using namespace qrobust;

namespace {
// One trained tiny run shared by the sweep tests.
struct TrainedRun {
  testing::TempDir data, runs;
  config::ExperimentConfig config;
  std::string checkpoint;
  TrainedRun() {
    testing::write_cifar10(data.path(), 48);
    config = testing::tiny_config(data.path(), 2);
    config.quant.calibration_samples = 64;
    train::TrainOptions options;
    options.run_dir = runs.file("run");
    train::train(config, options);
    checkpoint = train::checkpoint_path(options.run_dir);
  }
};
}  // namespace

TEST_CASE("a sweep at 32/32 reproduces eval exactly, 16/16 within 0.1 points, and rows have the schema") {
  TrainedRun run;
  auto model = train::build_model(run.config, torch::kCPU);
  train::load_checkpoint(run.checkpoint, *model, nullptr);
  const auto splits = data::load_splits(run.config.data, run.config.seed);
  const auto eval = train::evaluate(*model, splits.test, splits.info, run.config.data.eval_batch_size, torch::kCPU);

  sweep::SweepOptions options;
  options.weight_bits = {32, 16, 4};
  options.act_bits = {32, 16, 4};
  options.pairs = true;
  options.progress = false;
  const auto result = sweep::run_sweep(run.config, run.checkpoint, options);
  const auto& rows = result["rows"];
  REQUIRE(rows.size() == 4);
  CHECK(rows[0]["config"] == "fp32");
  CHECK(rows[0]["accuracy"].get<double>() == Approx(eval.accuracy));
  CHECK(rows[1]["config"] == "wfpafp");
  CHECK(rows[1]["accuracy"].get<double>() == Approx(eval.accuracy));
  CHECK(rows[1]["loss"].get<double>() == Approx(eval.loss).epsilon(1e-5));
  CHECK(rows[1]["kl_to_fp32"].get<double>() == Approx(0.0).margin(1e-6));
  CHECK(rows[2]["accuracy"].get<double>() == Approx(eval.accuracy).margin(0.1));
  for (const auto& row : rows) {
    for (const char* key : {"weight_bits", "act_bits", "accuracy", "loss", "kl_to_fp32", "first_order_bound", "loss_increase"})
      CHECK(row.contains(key));
    CHECK_FALSE(row.contains("top5"));  // 10 classes
  }
  // Coarser grids: a larger predicted bound and a larger divergence from the float model.
  CHECK(rows[3]["first_order_bound"].get<double>() > rows[2]["first_order_bound"].get<double>());
  CHECK(rows[3]["kl_to_fp32"].get<double>() > rows[2]["kl_to_fp32"].get<double>());
  const auto& header = result["header"];
  for (const char* key : {"model", "dataset", "checkpoint", "weight_granularity", "weight_symmetric", "act_estimator",
                          "first_last", "calibration_samples", "seed", "git_sha", "libtorch", "elapsed_seconds"})
    CHECK(header.contains(key));

  testing::TempDir out;
  sweep::write_sweep(result, out.file("s.json"));
  CHECK(nlohmann::json::parse(util::read_file(out.file("s.json"))) == result);
  const auto csv = util::read_file(out.file("s.csv"));
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 5);
  CHECK_THAT(util::read_file(out.file("s.md")), Catch::Contains("| w4a4 | 4 | 4 |"));
}

TEST_CASE("the grid is the full product or the zipped pairs; bad lists are usage errors") {
  sweep::SweepOptions options;
  options.weight_bits = {8, 4};
  options.act_bits = {32, 8, 4};
  CHECK(sweep::grid(options).size() == 6);
  options.pairs = true;
  CHECK_THROWS_WITH(sweep::grid(options), Catch::Contains("same length"));
  options.pairs = false;
  options.act_bits = {};
  CHECK_THROWS_WITH(sweep::grid(options), Catch::Contains("--act-bits: the list is empty"));
  options.act_bits = {1};
  CHECK_THROWS_AS(sweep::grid(options), UsageError);
}
