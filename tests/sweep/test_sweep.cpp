#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>

#include "data/datasets.h"
#include "evaluation/evaluate.h"
#include "io/checkpoint.h"
#include "models/registry.h"
#include "quant/bn_fold.h"
#include "report/sensitivity.h"
#include "report/sweep_files.h"
#include "sweep/sensitivity.h"
#include "sweep/sweep.h"
#include "test_support.h"
#include "train/trainer.h"
#include "util/atomic_file.h"

using namespace qrobust;

namespace {
// One trained tiny run shared by the sweep tests.
struct SweepRun : testing::TrainedTinyRun {
  SweepRun() : TrainedTinyRun(2, [](config::ExperimentConfig& c) { c.quant.calibration_samples(64); }) {}
};
}  // namespace

TEST_CASE("a sweep checks the stop flag before every configuration, a sensitivity analysis before every element") {
  SweepRun run;
  sweep::SweepOptions options;
  options.weight_bits = {8, 4};
  options.act_bits = {8, 4};
  options.pairs = true;
  options.progress = false;
  std::atomic<bool> stop{true};
  options.stop = &stop;
  CHECK_THROWS_MATCHES(sweep::run_sweep(run.config, run.checkpoint, options), sweep::SweepInterrupted,
                       Catch::Message("interrupted before configuration w8a8 of the sweep"));
  stop = false;
  CHECK(sweep::run_sweep(run.config, run.checkpoint, options)["rows"].size() == 3);

  sweep::SensitivityOptions sensitivity;
  sensitivity.progress = false;
  sensitivity.stop = &stop;
  stop = true;
  CHECK_THROWS_MATCHES(sweep::run_sensitivity(run.config, run.checkpoint, sensitivity), sweep::SweepInterrupted,
                       Catch::Message("interrupted before conv1 in the sensitivity analysis"));
}

TEST_CASE("a sweep at 32/32 reproduces eval exactly, 16/16 within 0.1 points, and rows have the schema") {
  SweepRun run;
  auto model = models::build_model(run.config.model, data::dataset_info(run.config.data).input(), run.config.seed, torch::kCPU);
  io::load_checkpoint(run.checkpoint, *model, nullptr);
  const auto splits = data::load_splits(run.config.data, run.config.seed);
  const auto eval = evaluation::evaluate(*model, splits.test, splits.info, run.config.data.eval_batch_size, torch::kCPU);

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
  report::write_sweep(result, out.file("s.json"));
  CHECK(nlohmann::json::parse(util::read_file(out.file("s.json"))) == result);
  const auto csv = util::read_file(out.file("s.csv"));
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 5);
  CHECK_THAT(util::read_file(out.file("s.md")), Catch::Contains("| w4a4 | 4 | 4 |"));
}

TEST_CASE("the grid is the full product or the zipped pairs, bad lists are usage errors") {
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

TEST_CASE("calibration draws: rows report the mean and spread of independent samples") {
  SweepRun run;
  sweep::SweepOptions options;
  options.weight_bits = {32, 4, 4};
  options.act_bits = {4, 4, 32};
  options.pairs = true;
  options.progress = false;
  options.calibration_draws = 3;
  const auto result = sweep::run_sweep(run.config, run.checkpoint, options);
  CHECK(result["header"]["calibration_draws"] == 3);
  for (size_t r = 1; r < 3; ++r) {
    const auto& row = result["rows"][r];
    const auto draws = row["accuracy_draws"].get<std::vector<double>>();
    REQUIRE(draws.size() == 3);
    CHECK(row["accuracy"].get<double>() == Approx((draws[0] + draws[1] + draws[2]) / 3));
    CHECK(row["accuracy_min"].get<double>() == *std::min_element(draws.begin(), draws.end()));
    CHECK(row["accuracy_max"].get<double>() == *std::max_element(draws.begin(), draws.end()));
  }
  // Draw 0 is the single-draw sweep's calibration sample.
  options.calibration_draws = 1;
  const auto single = sweep::run_sweep(run.config, run.checkpoint, options);
  CHECK(single["rows"][2]["accuracy"] == result["rows"][2]["accuracy_draws"][0]);
  // w4a32 quantizes no activation, so the draws would all give one model: it is evaluated once.
  CHECK(result["rows"][3]["config"] == "w4afp");
  CHECK(result["rows"][3]["accuracy_draws"].size() == 1);
  CHECK(result["rows"][3]["accuracy"] == single["rows"][3]["accuracy"]);
  testing::TempDir out;
  report::write_sweep(result, out.file("d.json"));
  CHECK_THAT(util::read_file(out.file("d.md")), Catch::Contains("x 3 draws") && Catch::Contains(" ± "));
}

TEST_CASE("sensitivity: one in at 32 bits is the float model, one in for a layer quantizes only that layer") {
  SweepRun run;
  sweep::SensitivityOptions options;
  options.progress = false;
  options.bits = 32;
  const auto float_doc = sweep::run_sensitivity(run.config, run.checkpoint, options);
  const double fp32_accuracy = float_doc["fp32"]["accuracy"].get<double>(), fp32_loss = float_doc["fp32"]["loss"].get<double>();
  REQUIRE(float_doc["rows"].size() == 8 + 9);  // resnet8: 8 layers; input, stem, two per block, pooled
  for (const auto& row : float_doc["rows"]) {
    INFO(row["name"]);
    CHECK(row["one_in"]["accuracy"].get<double>() == fp32_accuracy);
    CHECK(row["one_in"]["loss"].get<double>() == Approx(fp32_loss).epsilon(1e-6));
    CHECK(row["one_out"]["accuracy"].get<double>() == fp32_accuracy);
    CHECK(row["bound_term"].get<double>() == 0.0);
  }

  options.bits = 4;
  const auto doc = sweep::run_sensitivity(run.config, run.checkpoint, options);
  // Independent: fold, then round one layer's weights to the symmetric 4-bit grid by hand.
  for (const size_t layer : {size_t{0}, size_t{7}}) {
    auto model = sweep::load_trained_model(run.config, run.checkpoint, torch::kCPU);
    model->eval();
    quant::fold_batch_norms(*model);
    {
      torch::NoGradGuard no_grad;
      auto weight = model->quant_layers()[layer].weight();
      const double scale = weight.abs().max().item<double>() / 7;
      weight.copy_((weight / scale).round().clamp(-7, 7) * scale);
    }
    const auto splits = data::load_splits(run.config.data, run.config.seed);
    const auto expected = evaluation::evaluate(*model, splits.test, splits.info, run.config.data.eval_batch_size, torch::kCPU);
    const auto& row = doc["rows"][layer];
    INFO(row["name"]);
    CHECK(row["kind"] == "weights");
    CHECK(row["one_in"]["accuracy"].get<double>() == Approx(expected.accuracy));
    CHECK(row["one_in"]["loss"].get<double>() == Approx(expected.loss).epsilon(1e-4));
    CHECK(row["loss_increase"].get<double>() == Approx(expected.loss - fp32_loss).margin(1e-4));
    CHECK(row["bound_term"].get<double>() > 0);
  }
  // Everything quantized is the sweep's 4/4 row.
  sweep::SweepOptions sweep_options;
  sweep_options.weight_bits = {4};
  sweep_options.act_bits = {4};
  sweep_options.progress = false;
  const auto sweep = sweep::run_sweep(run.config, run.checkpoint, sweep_options);
  CHECK(doc["all"]["accuracy"].get<double>() == sweep["rows"][1]["accuracy"].get<double>());
  CHECK(doc["all"]["bound"].get<double>() == Approx(sweep["rows"][1]["first_order_bound"].get<double>()));

  testing::TempDir out;
  std::string warning;
  const auto charts = report::write_sensitivity(doc, out.file("s.json"), warning);
  CHECK_THAT(util::read_file(out.file("s.md")), Catch::Contains("| conv1 | weights | 4 |"));
  const auto csv = util::read_file(out.file("s.csv"));
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 1 + 17);
  if (warning.empty()) CHECK(charts.size() == 2);
  // A run trained again removes them all, and nothing else in its folder.
  util::write_file_atomically(out.file("s.txt"), "kept");
  report::remove_result_files(out.file("s.json"));
  std::vector<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(out.path())) left.push_back(entry.path().filename().string());
  CHECK(left == std::vector<std::string>{"s.txt"});
}

TEST_CASE("PTQ recipes in a sweep: AdaRound's weight-only rows are at least nearest rounding's, the header names the recipe") {
  SweepRun run;
  sweep::SweepOptions options;
  options.weight_bits = {4, 3};
  options.act_bits = {32, 32};
  options.pairs = true;
  options.progress = false;
  options.calibration_draws = 2;
  const auto nearest = sweep::run_sweep(run.config, run.checkpoint, options);
  CHECK(nearest["header"]["recipe"] == "round-to-nearest");
  CHECK(nearest["rows"][1]["accuracy_draws"].size() == 1);  // nothing depends on the draw

  auto config = run.config;
  config.quant.rounding(quant::Rounding::kAdaRound).bias_correction(quant::BiasCorrection::kEmpirical);
  config.quant.adaround().iterations(300);
  const auto learned = sweep::run_sweep(config, run.checkpoint, options);
  CHECK_THAT(learned["header"]["recipe"].get<std::string>(), Catch::StartsWith("BC empirical + AdaRound 300 it"));
  CHECK(learned["header"]["recipe_cost"]["layers_learned"] == 2 * 2 * 8);  // 2 bit-widths x 2 draws x 8 layers
  CHECK(learned["header"]["quant"]["rounding"] == "adaround");
  for (size_t row = 1; row <= 2; ++row) {
    INFO(learned["rows"][row]["config"]);
    CHECK(learned["rows"][row]["accuracy_draws"].size() == 2);  // each draw learns its own weights
    CHECK(learned["rows"][row]["accuracy"].get<double>() >= nearest["rows"][row]["accuracy"].get<double>());
    CHECK(learned["rows"][row]["loss"].get<double>() < nearest["rows"][row]["loss"].get<double>());
  }
  // CLE changes nothing in float.
  config.quant.rounding(quant::Rounding::kNearest).bias_correction(quant::BiasCorrection::kNone).equalize(true);
  options.weight_bits = {32};
  options.act_bits = {32};
  const auto equalized = sweep::run_sweep(config, run.checkpoint, options);
  CHECK(equalized["rows"][1]["accuracy"] == nearest["rows"][0]["accuracy"]);
  CHECK(equalized["rows"][1]["loss"].get<double>() == Approx(nearest["rows"][0]["loss"].get<double>()).epsilon(1e-5));
  // A sensitivity analysis names its recipe too.
  config.quant.equalize(false).bias_correction(quant::BiasCorrection::kEmpirical);
  sweep::SensitivityOptions sensitivity;
  sensitivity.progress = false;
  const auto doc = sweep::run_sensitivity(config, run.checkpoint, sensitivity);
  CHECK(doc["header"]["recipe"] == "BC empirical");
  testing::TempDir out;
  std::string warning;
  report::write_sensitivity(doc, out.file("s.json"), warning);
  CHECK_THAT(util::read_file(out.file("s.md")), Catch::Contains("; recipe BC empirical"));
}
