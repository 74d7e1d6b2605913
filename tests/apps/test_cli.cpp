// End-to-end checks of the qrobust binary: exit codes, one-line errors, train then eval.
#include <catch2/catch.hpp>
#include <filesystem>

#include "test_support.h"
#include "train/trainer.h"
#include "util/atomic_file.h"
#include "util/directory_lock.h"

using namespace qrobust;

namespace {
testing::CommandResult run(const std::string& arguments) {
  return testing::run_command(std::string(QROBUST_BINARY) + " " + arguments);
}

int count_lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }
}  // namespace

TEST_CASE("qrobust --version names the version, git SHA and LibTorch") {
  const auto r = run("--version");
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::StartsWith("qrobust ") && Catch::Contains("git ") && Catch::Contains("LibTorch "));
}

TEST_CASE("usage and config errors exit with 2 and one line") {
  testing::TempDir dir;
  testing::write_bytes(dir.file("bad.yaml"), "train:\n  lr: fast\n");
  const auto bad_value = run("train --config " + dir.file("bad.yaml") + " --out " + dir.file("run"));
  CHECK(bad_value.exit_code == 2);
  CHECK_THAT(bad_value.output, Catch::Contains(dir.file("bad.yaml") + ":2: train.lr: expected a number, got \"fast\""));
  CHECK(count_lines(bad_value.output) == 1);
  CHECK_FALSE(std::filesystem::exists(dir.file("run")));

  CHECK(run("train --config " + dir.file("missing.yaml")).exit_code == 2);
  // A PTQ recipe's bad settings, given on the command line.
  testing::write_bytes(dir.file("good.yaml"), "name: g\n");
  const auto bad_iterations = run("train --config " + dir.file("good.yaml") + " --out " + dir.file("run") +
                                  " --set quant.rounding=adaround --set quant.adaround.iterations=-3");
  CHECK(bad_iterations.exit_code == 2);
  CHECK_THAT(bad_iterations.output, Catch::Contains("quant.adaround.iterations: must be 1..10000000, got -3"));
  CHECK(count_lines(bad_iterations.output) == 1);
  const auto bad_recipe = run("train --config " + dir.file("good.yaml") + " --out " + dir.file("run") +
                              " --set quant.rounding=adaround_plus");
  CHECK(bad_recipe.exit_code == 2);
  CHECK_THAT(bad_recipe.output, Catch::Contains("quant.rounding: expected one of nearest, adaround"));
  CHECK_FALSE(std::filesystem::exists(dir.file("run")));
  CHECK(run("train --no-such-flag").exit_code == 2);
  CHECK(run("eval").exit_code == 2);
}

TEST_CASE("train then eval on a small data set, a missing data file is a runtime error") {
  testing::TempDir data, dir;
  testing::write_cifar10(data.path(), 32);
  const std::string config = "name: cli\nseed: 1\ndevice: cpu\nthreads: 1\n"
                             "data:\n  dataset: cifar10\n  root: " + data.path() + "\n  batch_size: 32\n"
                             "model:\n  name: resnet8\n  width: 4\ntrain:\n  epochs: 1\n  lr: 0.05\n";
  testing::write_bytes(dir.file("cli.yaml"), config);
  const auto trained = run("train --config " + dir.file("cli.yaml") + " --out " + dir.file("run"));
  INFO(trained.output);
  REQUIRE(trained.exit_code == 0);
  const auto metrics = nlohmann::json::parse(util::read_file(train::metrics_path(dir.file("run"))));

  const auto evaluated = run("eval --run " + dir.file("run"));
  REQUIRE(evaluated.exit_code == 0);
  const auto result = nlohmann::json::parse(evaluated.output.substr(evaluated.output.find('{')));
  CHECK(result["accuracy"].get<double>() == metrics["test"]["accuracy"].get<double>());
  CHECK(result["samples"] == 32);

  // sweep-bits: bad requests exit 2 and leave no output behind; a good one writes all three files.
  const std::string sweep = "sweep-bits --run " + dir.file("run") + " --out " + dir.file("sweep/s.json");
  for (const auto& bad : {std::string(" --weight-bits 1"), std::string(" --act-bits="), std::string(" --set model.name=resnet14"),
                          std::string(" --set quant.act_estimator=kmeans"), std::string(" --weight-bits 8,4 --act-bits 8 --pairs")}) {
    const auto r = run(sweep + bad);
    INFO(bad << ": " << r.output);
    CHECK(r.exit_code == 2);
    CHECK(count_lines(r.output) == 1);
    CHECK_FALSE(std::filesystem::exists(dir.file("sweep/s.json")));
  }
  const auto swept = run(sweep + " --weight-bits 8,4 --act-bits 8,4 --pairs --set quant.calibration_samples=64");
  INFO(swept.output);
  REQUIRE(swept.exit_code == 0);
  const auto table = nlohmann::json::parse(util::read_file(dir.file("sweep/s.json")));
  CHECK(table["rows"].size() == 3);
  CHECK(table["rows"][0]["accuracy"].get<double>() == result["accuracy"].get<double>());
  CHECK(std::filesystem::exists(dir.file("sweep/s.md")));
  CHECK(std::filesystem::exists(dir.file("sweep/s.csv")));
  const auto drawn = run(sweep + " --weight-bits 4 --act-bits 4 --calibration-draws 2 --set quant.calibration_samples=16");
  REQUIRE(drawn.exit_code == 0);
  CHECK(nlohmann::json::parse(util::read_file(dir.file("sweep/s.json")))["rows"][1]["accuracy_draws"].size() == 2);
  CHECK(run(sweep + " --calibration-draws 0").exit_code == 2);

  {
    // Another process writing into the run: refused, one line, exit 1.
    util::DirectoryLock held(dir.file("run"), "a test");
    const auto refused = run("sweep-bits --run " + dir.file("run") + " --weight-bits 8 --act-bits 8");
    CHECK(refused.exit_code == 1);
    CHECK(count_lines(refused.output) == 1);
    CHECK_THAT(refused.output, Catch::Contains("another qrobust process is writing here"));
    const auto resumed = run("train --out " + dir.file("run") + " --resume");
    CHECK(resumed.exit_code == 1);
    CHECK_THAT(resumed.output, Catch::Contains("qrobust train refuses to share a directory"));
  }
  // Without --out a sweep goes into the run directory, or next to the checkpoint it was given.
  const std::string small = " --weight-bits 8 --act-bits 8 --set quant.calibration_samples=16";
  REQUIRE(run("sweep-bits --run " + dir.file("run") + small).exit_code == 0);
  CHECK(std::filesystem::exists(dir.file("run/sweep.json")));
  REQUIRE(run("sweep-bits --checkpoint " + train::checkpoint_path(dir.file("run")) + small).exit_code == 0);
  CHECK(std::filesystem::exists(dir.file("run/checkpoint_sweep.json")));

  // sensitivity: a bad bit-width exits 2; a good run writes JSON, Markdown and CSV into the run.
  for (const auto& bad : {std::string(" --bits 1"), std::string(" --bits 32"), std::string(" --split train")}) {
    const auto r = run("sensitivity --run " + dir.file("run") + bad);
    INFO(bad << ": " << r.output);
    CHECK(r.exit_code == 2);
    CHECK(count_lines(r.output) == 1);
  }
  CHECK_THAT(run("sensitivity --run " + dir.file("run") + " --split train").output,
             Catch::Contains("--split: expected one of val, test, got \"train\""));
  const auto sensitivity = run("sensitivity --run " + dir.file("run") + " --bits 4 --set quant.calibration_samples=16");
  INFO(sensitivity.output);
  REQUIRE(sensitivity.exit_code == 0);
  const auto doc = nlohmann::json::parse(util::read_file(dir.file("run/sensitivity_w4_test.json")));
  CHECK(doc["rows"].size() == 17);
  CHECK(doc["fp32"]["accuracy"].get<double>() == result["accuracy"].get<double>());
  CHECK(std::filesystem::exists(dir.file("run/sensitivity_w4_test.md")));
  CHECK(std::filesystem::exists(dir.file("run/sensitivity_w4_test.csv")));

  // mixed-precision: without a val split, or with a budget no plan fits, exit 2 and write nothing;
  // a good search writes its tables and plans, and sweep-bits --plan evaluates a plan it wrote.
  const std::string search = "mixed-precision --run " + dir.file("run") + " --set quant.calibration_samples=16";
  const std::string small_search = " --set data.val_size=16 --set 'mixed_precision.criteria=[first_order]'"
                                   " --set 'mixed_precision.weight_bits=[8,4]' --set 'mixed_precision.budgets=[6,4]'";
  for (const auto& bad : {std::string(""), small_search + " --set 'mixed_precision.budgets=[3]'", std::string(" --draws 0")}) {
    const auto r = run(search + bad);
    INFO(bad << ": " << r.output);
    CHECK(r.exit_code == 2);
    CHECK(count_lines(r.output) == 1);
    CHECK_FALSE(std::filesystem::exists(dir.file("run/mixed_precision.json")));
  }
  const auto searched = run(search + small_search);
  INFO(searched.output);
  REQUIRE(searched.exit_code == 0);
  CHECK(nlohmann::json::parse(util::read_file(dir.file("run/mixed_precision.json")))["plans"].size() == 2);
  CHECK(std::filesystem::exists(dir.file("run/mixed_precision.md")));
  const auto plan_file = dir.file("run/mixed_precision_plans/first_order_4.json");
  REQUIRE(std::filesystem::exists(plan_file));
  const auto planned = run("sweep-bits --run " + dir.file("run") + " --plan " + plan_file + " --set quant.calibration_samples=16");
  INFO(planned.output);
  REQUIRE(planned.exit_code == 0);
  CHECK(nlohmann::json::parse(util::read_file(dir.file("run/first_order_4_plan.json")))["plan"]["average_weight_bits"] <= 4.0);
  auto other = nlohmann::json::parse(util::read_file(plan_file));
  other["architecture"] = "vgg_like";
  util::write_file_atomically(dir.file("other_plan.json"), other.dump());
  for (const auto& bad : {dir.file("other_plan.json"), dir.file("no_plan.json")}) {
    const auto r = run("sweep-bits --run " + dir.file("run") + " --plan " + bad);
    INFO(r.output);
    CHECK(r.exit_code == 2);
    CHECK(count_lines(r.output) == 1);
    CHECK_FALSE(std::filesystem::exists(dir.file("run/other_plan_plan.json")));
    CHECK_FALSE(std::filesystem::exists(dir.file("run/no_plan_plan.json")));
  }

  // export: no such draw, bits out of range, another architecture's plan: exit 2, one line, nothing
  // written (not even the output folder); a good request writes the ONNX file and a plan exports too.
  const std::string export_run = "export --run " + dir.file("run") + " --set quant.calibration_samples=16 --out ";
  for (const auto& bad : {std::string(" --draw -1"), std::string(" --draw 1000"), std::string(" --weight-bits 16"),
                          std::string(" --act-bits 1"), " --plan " + dir.file("other_plan.json")}) {
    const auto r = run(export_run + dir.file("exported/model.onnx") + bad);
    INFO(bad << ": " << r.output);
    CHECK(r.exit_code == 2);
    CHECK(count_lines(r.output) == 1);
    CHECK_FALSE(std::filesystem::exists(dir.file("exported")));
  }
  const auto exported = run(export_run + dir.file("exported/model.onnx") + " --weight-bits 4 --act-bits 8 --draw 1");
  INFO(exported.output);
  CHECK(exported.exit_code == 0);
  CHECK(std::filesystem::file_size(dir.file("exported/model.onnx")) > 0);
  const auto planned_export = run(export_run + dir.file("exported/plan.pt") + " --plan " + plan_file + " --format torch");
  INFO(planned_export.output);
  CHECK(planned_export.exit_code == 0);
  CHECK(std::filesystem::file_size(dir.file("exported/plan.pt")) > 0);

  std::filesystem::remove(data.file("test_batch.bin"));
  const auto missing = run("eval --checkpoint " + train::checkpoint_path(dir.file("run")));
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.output, Catch::Contains(data.file("test_batch.bin")) && Catch::Contains("not found"));
}

TEST_CASE("run --dry-run prints the plan with an estimate and writes nothing, a bad experiment file exits 2") {
  testing::TempDir data, dir;
  testing::write_cifar10(data.path(), 32);
  testing::write_bytes(dir.file("base.yaml"), "name: base\nseed: 1\ndevice: cpu\nthreads: 1\n"
                                              "data:\n  dataset: cifar10\n  root: " + data.path() + "\n  batch_size: 32\n"
                                              "model:\n  name: resnet8\n  width: 4\ntrain:\n  epochs: 2\n");
  testing::write_bytes(dir.file("exp.yaml"), "base: " + dir.file("base.yaml") + "\nvariants:\n  none: {}\n"
                                             "  grad_l1: {regularizer.name: grad_l1, regularizer.lambda_w: 1.0e-4}\n");
  const auto plan = run("run --config " + dir.file("exp.yaml") + " --results " + dir.file("results") + " --dry-run");
  CHECK(plan.exit_code == 0);
  CHECK_THAT(plan.output, Catch::Contains("experiment exp") && Catch::Contains("grad_l1: train 2 epochs;") &&
                              Catch::Contains("estimated total:"));
  CHECK_FALSE(std::filesystem::exists(dir.file("results")));
  CHECK_THAT(plan.output, !Catch::Contains("PTQ recipes"));
  // A quantizer with a learned recipe adds its steps to the estimate.
  testing::write_bytes(dir.file("recipes.yaml"), "base: " + dir.file("base.yaml") + "\nvariants:\n  none: {}\n"
                                                 "sweep:\n  quantizers:\n    rtn: {}\n"
                                                 "    adaround: {quant.rounding: adaround}\n");
  const auto recipes = run("run --config " + dir.file("recipes.yaml") + " --results " + dir.file("results") + " --dry-run");
  CHECK(recipes.exit_code == 0);
  CHECK_THAT(recipes.output, Catch::Contains("(PTQ recipes' learned steps about "));

  testing::write_bytes(dir.file("bad.yaml"), "base: " + dir.file("base.yaml") + "\nvariants:\n  x: {train.lr: fast}\n");
  const auto bad = run("run --config " + dir.file("bad.yaml") + " --dry-run");
  CHECK(bad.exit_code == 2);
  CHECK(count_lines(bad.output) == 1);
  CHECK_THAT(bad.output, Catch::Contains("variant \"x\"") && Catch::Contains("train.lr: expected a number"));
}
