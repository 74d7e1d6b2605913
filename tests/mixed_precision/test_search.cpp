#include <catch2/catch.hpp>

#include "mixed_precision/search.h"
#include "models/registry.h"
#include "quant/bit_plan_file.h"
#include "report/mixed_precision.h"
#include "sweep/sweep.h"
#include "test_support.h"
#include "train/trainer.h"
#include "util/atomic_file.h"
#include "util/errors.h"

using namespace qrobust;

namespace {

// One trained tiny run with a val split, shared by the search tests.
struct SearchRun : testing::TrainedTinyRun {
  SearchRun()
      : TrainedTinyRun(1, [](config::ExperimentConfig& c) {
          c.data.val_size = 40;
          c.quant.calibration_samples(32);
          c.mixed_precision.weight_bits({8, 4, 2}).act_bits({8}).budgets({8, 4, 3}).score_images(32).hutchinson_samples(2);
        }) {}
};

}  // namespace

TEST_CASE("a plan's size and bit operations are hand counts on ResNet-8") {
  auto model = models::make_model("resnet8", {3, 8, 8, 10}, 4);
  const auto layers = models::layer_costs(*model);
  quant::BitPlan plan;
  plan.layer_bits = {8, 4, 4, 2, 2, 3, 3, 32};
  plan.point_bits = {8, 6, 4, 8, 4, 6, 32, 8, 8};  // input_point, act1, layer1.0.act1, ... pooled_point
  const auto cost = mixed_precision::plan_cost(layers, plan);
  CHECK(cost.size_bits == 108 * 8 + 144 * 4 + 144 * 4 + 288 * 2 + 576 * 2 + 1152 * 3 + 2304 * 3 + 160 * 32);
  // MACs x weight bits x the bits of the point each layer reads.
  CHECK(cost.bit_ops == 6912 * 8 * 8 + 9216 * 4 * 6 + 9216 * 4 * 4 + 4608 * 2 * 8 + 9216 * 2 * 4 + 4608 * 3 * 6 +
                            9216 * 3 * 32 + 160 * 32 * 8);
  const int64_t weights = 108 + 2 * 144 + 288 + 576 + 1152 + 2304 + 160;
  CHECK(mixed_precision::absolute_budget(mixed_precision::BudgetAxis::kSize, 4, layers) == 4 * weights);
  CHECK(mixed_precision::average_bits(mixed_precision::BudgetAxis::kSize, cost, layers) ==
        Approx(static_cast<double>(cost.size_bits) / weights));
}

TEST_CASE("candidates follow the first/last policy") {
  mixed_precision::MixedPrecisionOptions options;
  options.weight_bits({6, 4, 2}).act_bits({8, 4});
  const auto int8 = mixed_precision::candidates(options, quant::FirstLast::kInt8, 4, 3);
  CHECK(int8.layers[0] == std::vector<int>{8});
  CHECK(int8.layers[1] == std::vector<int>{6, 4, 2});
  CHECK(int8.layers[3] == std::vector<int>{8});
  CHECK(int8.points[0] == std::vector<int>{8});
  CHECK(int8.points[1] == std::vector<int>{8, 4});
  const auto kept_float = mixed_precision::candidates(options, quant::FirstLast::kFloat, 4, 3);
  CHECK(kept_float.layers[0] == std::vector<int>{quant::kFloatBits});
}

TEST_CASE("a uniform plan evaluates to the sweep's row, and a mixed search fits every budget") {
  SearchRun run;
  // The plan file of uniform w4a4, evaluated with two calibration draws, against the sweep's row.
  auto model = models::build_model(run.config.model, data::dataset_info(run.config.data).input(), 0, torch::kCPU);
  quant::BitPlan uniform{std::vector<int>(model->quant_layers().size(), 4), std::vector<int>(model->quant_points().size(), 4)};
  util::write_file_atomically(run.runs.file("w4a4.json"), quant::bit_plan_json(uniform, *model).dump());
  sweep::SweepOptions sweep_options;
  sweep_options.weight_bits = {4};
  sweep_options.act_bits = {4};
  sweep_options.calibration_draws = 2;
  sweep_options.progress = false;
  const auto row = sweep::run_sweep(run.config, run.checkpoint, sweep_options)["rows"][1];
  const auto evaluated = mixed_precision::run_plan(run.config, run.checkpoint, run.runs.file("w4a4.json"), data::Split::kTest, 2);
  CHECK(evaluated["plan"]["accuracy_draws"] == row["accuracy_draws"]);
  CHECK(evaluated["plan"]["loss"].get<double>() == row["loss"].get<double>());
  CHECK(evaluated["plan"]["average_weight_bits"].get<double>() == 4.0);

  // A PTQ recipe applies to a plan as to a sweep row: empirical bias correction, learned per draw.
  auto corrected = run.config;
  corrected.quant.bias_correction(quant::BiasCorrection::kEmpirical);
  const auto corrected_row = sweep::run_sweep(corrected, run.checkpoint, sweep_options)["rows"][1];
  const auto corrected_plan = mixed_precision::run_plan(corrected, run.checkpoint, run.runs.file("w4a4.json"), data::Split::kTest, 2);
  CHECK(corrected_plan["plan"]["accuracy_draws"] == corrected_row["accuracy_draws"]);
  CHECK(corrected_plan["plan"]["loss"].get<double>() == corrected_row["loss"].get<double>());
  CHECK(corrected_plan["plan"]["loss"].get<double>() != evaluated["plan"]["loss"].get<double>());

  // A bad plan fails before any work.
  auto wrong = quant::bit_plan_json(uniform, *model);
  wrong["layers"][0]["bits"] = 40;
  util::write_file_atomically(run.runs.file("bad.json"), wrong.dump());
  CHECK_THROWS_AS(mixed_precision::run_plan(run.config, run.checkpoint, run.runs.file("bad.json"), data::Split::kTest, 1),
                  UsageError);

  mixed_precision::SearchRequest request;
  request.progress = false;
  const auto doc = mixed_precision::run_mixed_precision(run.config, run.checkpoint, request);
  REQUIRE(doc["plans"].size() == 3 * 3);
  CHECK(doc["uniform"].size() == 3);
  for (const auto& criterion : doc["criteria"]) {
    CHECK(criterion["seconds"].get<double>() > 0);
    CHECK(criterion["passes"].get<int64_t>() > 0);
  }
  std::map<std::string, std::vector<double>> predicted;
  for (const auto& plan : doc["plans"]) {
    INFO(plan["criterion"] << " at " << plan["budget"]);
    CHECK(plan["average"].get<double>() <= plan["budget"].get<double>() + 1e-12);
    predicted[plan["criterion"]].push_back(plan["predicted_increase"].get<double>());
    if (plan["budget"] == 8) {  // everything fits at 8 bits; the first-order bound is least there
      if (plan["criterion"] == "first_order")
        for (const auto& layer : plan["plan"]["layers"]) CHECK(layer["bits"] == 8);
    }
  }
  for (const auto& [criterion, values] : predicted) {  // budgets 8, 4, 3: a smaller budget never predicts less
    CHECK(values[0] <= values[1] + 1e-12);
    CHECK(values[1] <= values[2] + 1e-12);
  }
  // The uniform w8 row is what the sweep measures at w8a8.
  sweep_options.weight_bits = {8};
  sweep_options.act_bits = {8};
  sweep_options.calibration_draws = 1;
  CHECK(doc["uniform"][0]["accuracy"] == sweep::run_sweep(run.config, run.checkpoint, sweep_options)["rows"][1]["accuracy"]);

  // Written: the tables, each plan as a file sweep-bits --plan reads, and the plan reads back.
  std::string warning;
  report::write_mixed_precision(doc, run.runs.file("out/mp.json"), warning);
  for (const auto* suffix : {"mp.json", "mp.md", "mp.csv"}) CHECK(std::filesystem::exists(run.runs.file(std::string("out/") + suffix)));
  const auto plan_path = report::plan_file_path(run.runs.file("out/mp.json"), "measured", 3);
  REQUIRE(doc["plans"][8]["criterion"] == "measured");
  std::vector<int> expected_bits;
  for (const auto& layer : doc["plans"][8]["plan"]["layers"]) expected_bits.push_back(layer["bits"].get<int>());
  CHECK(quant::read_bit_plan(plan_path, *model).layer_bits == expected_bits);
  const auto reread = mixed_precision::run_plan(run.config, run.checkpoint, plan_path, data::Split::kTest, 1);
  CHECK(reread["plan"]["accuracy"] == doc["plans"][8]["accuracy"]);

  // Bit operations: every plan's count within its budget.
  auto bops = run.config;
  bops.mixed_precision.axis(mixed_precision::BudgetAxis::kBitOps).act_bits({8, 4}).budgets({32, 12}).criteria(
      {mixed_precision::Criterion::kFirstOrder});
  const auto bops_doc = mixed_precision::run_mixed_precision(bops, run.checkpoint, request);
  for (const auto& plan : bops_doc["plans"])
    CHECK(plan["bit_ops"].get<double>() <= plan["budget"].get<double>() * bops_doc["header"]["macs_per_image"].get<double>());

  // A budget no plan fits, and a config without a val split, fail before any work.
  auto tight = run.config;
  tight.mixed_precision.budgets({1.5});
  CHECK_THROWS_MATCHES(mixed_precision::run_mixed_precision(tight, run.checkpoint, request), UsageError,
                       Catch::Message("mixed_precision.budgets: no plan fits 1.5 average bits; the cheapest candidates give 2"));
  auto no_val = run.config;
  no_val.data.val_size = 0;
  CHECK_THROWS_WITH(mixed_precision::run_mixed_precision(no_val, run.checkpoint, request), Catch::Contains("set data.val_size"));
}
