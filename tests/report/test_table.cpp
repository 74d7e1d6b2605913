#include <catch2/catch.hpp>

#include <filesystem>
#include <tuple>

#include "config/quant_settings.h"
#include "report/table.h"
#include "test_support.h"
#include "util/atomic_file.h"

using namespace qrobust;

namespace {
// A sweep header holds every quant setting flat (sweep/sweep.h).
nlohmann::json sweep_doc(double fp32, double w4a4, const std::string& granularity) {
  auto header = config::QuantSettings().to_json();
  header.update({{"weight_granularity", granularity}, {"samples", 100}, {"checkpoint", "x"}});
  return {{"header", header},
          {"rows", {{{"config", "fp32"}, {"accuracy", fp32}}, {{"config", "w4a4"}, {"accuracy", w4a4}}}}};
}
}  // namespace

TEST_CASE("tables have one row per variant and one column per configuration, per quantizer and split") {
  const std::vector<report::SweepEntry> entries = {
      {"none", 1, "per_tensor", "test", sweep_doc(90.0, 70.5, "per_tensor")},
      {"none", 1, "per_channel", "test", sweep_doc(90.0, 80.25, "per_channel")},
      {"grad_l1", 1, "per_tensor", "test", sweep_doc(89.5, 85.0, "per_tensor")},
      {"grad_l1", 1, "per_channel", "test", sweep_doc(89.5, 86.0, "per_channel")}};
  const auto table = report::make_table("demo", entries);
  CHECK(table["columns"] == nlohmann::json({"fp32", "w4a4"}));
  REQUIRE(table["tables"].size() == 2);
  CHECK(table["tables"][0]["quantizer"] == "per_tensor");
  CHECK(table["tables"][0]["rows"][1]["variant"] == "grad_l1");
  CHECK(table["tables"][0]["rows"][1]["accuracy"]["w4a4"]["mean"] == 85.0);
  CHECK(table["tables"][0]["rows"][1]["accuracy"]["w4a4"]["n"] == 1);
  CHECK(table["tables"][1]["rows"][0]["accuracy"]["w4a4"]["mean"] == 80.25);
  CHECK_FALSE(table["tables"][0]["settings"].contains("checkpoint"));  // per-variant, not per table
  // One seed: a difference, but no interval.
  const auto& one_seed = table["tables"][0]["comparison"][0]["difference"]["w4a4"];
  CHECK(one_seed["mean"].get<double>() == Approx(14.5));
  CHECK_FALSE(one_seed["defined"].get<bool>());

  testing::TempDir dir;
  report::write_table(table, dir.path());
  CHECK(nlohmann::json::parse(util::read_file(dir.file("table.json"))) == table);
  const auto md = util::read_file(dir.file("table.md"));
  CHECK_THAT(md, Catch::Contains("## per_channel, test split"));
  CHECK_THAT(md, Catch::Contains("| variant | fp32 | w4a4 |"));
  CHECK_THAT(md, Catch::Contains("| grad_l1 | 89.50 | 85.00 |"));
  CHECK_THAT(md, Catch::Contains("| grad_l1 | -0.50 (n=1) | +14.50 (n=1) |"));
  const auto csv = util::read_file(dir.file("table.csv"));
  CHECK_THAT(csv, Catch::StartsWith("table,variant,quantizer,split,column,mean,std,n,low,high\n"));
  CHECK_THAT(csv, Catch::Contains("accuracy,none,per_channel,test,w4a4,80.25,0.0,1,,\n"));

  std::string warning;
  const auto plots = report::write_plots(table, dir.path(), warning);
  if (warning.empty()) {
    REQUIRE(plots.size() == 4);  // svg and png for each quantizer
    CHECK_THAT(util::read_file(dir.file("plot_per_tensor.svg")), Catch::Contains("<svg"));
    CHECK(std::filesystem::file_size(dir.file("plot_per_channel.png")) > 1000);
  } else {
    WARN(warning);
    CHECK(plots.empty());
  }
}

TEST_CASE("over seeds, cells are mean ± std and the comparison is a paired t-interval computed by hand") {
  // none: 80, 79, 81 at w4a4; grad_l1: 82, 80, 84 (differences 2, 1, 3); seed 4 only for none.
  std::vector<report::SweepEntry> entries;
  const std::vector<std::tuple<int64_t, double, double>> seeds = {{1, 80, 82}, {2, 79, 80}, {3, 81, 84}};
  for (const auto& [seed, none, penalized] : seeds) {
    entries.push_back({"none", seed, "q", "test", sweep_doc(90, none, "per_tensor")});
    entries.push_back({"grad_l1", seed, "q", "test", sweep_doc(90, penalized, "per_tensor")});
  }
  entries.push_back({"none", 4, "q", "test", sweep_doc(90, 60, "per_tensor")});
  const auto table = report::make_table("seeds", entries, "none");
  const auto& t = table["tables"][0];
  const auto& penalized = t["rows"][1]["accuracy"]["w4a4"];
  CHECK(penalized["mean"].get<double>() == Approx(82.0));
  CHECK(penalized["std"].get<double>() == Approx(2.0));
  CHECK(penalized["n"] == 3);
  CHECK(t["rows"][0]["accuracy"]["w4a4"]["n"] == 4);
  const auto& d = t["comparison"][0]["difference"]["w4a4"];
  CHECK(d["n"] == 3);  // seed 4 has no pair
  CHECK(d["mean"].get<double>() == Approx(2.0));
  // mean ± t(0.975, 2) · 1 / √3 = 2 ± 2.484138
  CHECK(d["low"].get<double>() == Approx(-0.484138).epsilon(1e-5));
  CHECK(d["high"].get<double>() == Approx(4.484138).epsilon(1e-5));
  CHECK_FALSE(d["excludes_zero"].get<bool>());
  CHECK(t["comparison"][0]["difference"]["fp32"]["mean"].get<double>() == Approx(0.0));

  testing::TempDir dir;
  report::write_table(table, dir.path());
  const auto md = util::read_file(dir.file("table.md"));
  CHECK_THAT(md, Catch::Contains("| grad_l1 | 90.00 ± 0.00 (3) | 82.00 ± 2.00 (3) |"));
  CHECK_THAT(md, Catch::Contains("+2.00 [-0.48, +4.48]"));
  CHECK_THAT(util::read_file(dir.file("table.csv")), Catch::Contains("difference,grad_l1,q,test,w4a4,2.0,1.0,3,"));
}

TEST_CASE("turned around, a table per variant compares each quantizer setting with a reference setting by seed") {
  // none under rtn: 70, 72, 68 at w4a4; under adaround: 75, 76, 74 (gains 5, 4, 6); grad_l1 one seed only.
  std::vector<report::SweepEntry> entries;
  const std::vector<std::tuple<int64_t, double, double>> seeds = {{1, 70, 75}, {2, 72, 76}, {3, 68, 74}};
  for (const auto& [seed, rtn, adaround] : seeds) {
    entries.push_back({"none", seed, "rtn", "test", sweep_doc(90, rtn, "per_tensor")});
    entries.push_back({"none", seed, "adaround", "test", sweep_doc(90, adaround, "per_channel")});
  }
  entries.push_back({"grad_l1", 1, "rtn", "test", sweep_doc(89, 71, "per_tensor")});
  entries.push_back({"grad_l1", 1, "adaround", "test", sweep_doc(89, 77, "per_channel")});
  const auto table = report::make_quantizer_table("recipes", entries, "rtn");
  CHECK(table["rows_are"] == "quantizer");
  CHECK(table["reference"] == "rtn");
  REQUIRE(table["tables"].size() == 2);
  const auto& none = table["tables"][0];
  CHECK(none["variant"] == "none");
  REQUIRE(none["rows"].size() == 2);
  CHECK(none["rows"][1]["quantizer"] == "adaround");
  CHECK(none["rows"][1]["accuracy"]["w4a4"]["mean"].get<double>() == Approx(75.0));
  CHECK(none["settings"]["adaround"]["weight_granularity"] == "per_channel");
  CHECK(none["settings"]["rtn"]["weight_granularity"] == "per_tensor");
  REQUIRE(none["comparison"].size() == 1);
  const auto& d = none["comparison"][0]["difference"]["w4a4"];
  CHECK(none["comparison"][0]["quantizer"] == "adaround");
  CHECK(d["n"] == 3);
  CHECK(d["mean"].get<double>() == Approx(5.0));
  // mean ± t(0.975, 2) · 1 / √3 = 5 ± 2.484138: excludes 0.
  CHECK(d["low"].get<double>() == Approx(2.515862).epsilon(1e-5));
  CHECK(d["excludes_zero"].get<bool>());
  CHECK(table["tables"][1]["comparison"][0]["difference"]["w4a4"]["mean"].get<double>() == Approx(6.0));

  testing::TempDir dir;
  report::write_table(table, dir.path(), "table_by_quantizer");
  CHECK(nlohmann::json::parse(util::read_file(dir.file("table_by_quantizer.json"))) == table);
  const auto md = util::read_file(dir.file("table_by_quantizer.md"));
  CHECK_THAT(md, Catch::Contains("by quantizer setting, one table per variant"));
  CHECK_THAT(md, Catch::Contains("## none, test split"));
  CHECK_THAT(md, Catch::Contains("- adaround: weights per_channel"));
  CHECK_THAT(md, Catch::Contains("| quantizer | fp32 | w4a4 |"));
  CHECK_THAT(md, Catch::Contains("| adaround | 90.00 ± 0.00 (3) | 75.00 ± 1.00 (3) |"));
  CHECK_THAT(md, Catch::Contains("| adaround | +0.00 [+0.00, +0.00] | **+5.00** [+2.52, +7.48] |"));
  // CSV lines name the variant, then the quantizer setting, as in the variant tables.
  const auto csv = util::read_file(dir.file("table_by_quantizer.csv"));
  CHECK_THAT(csv, Catch::Contains("accuracy,grad_l1,adaround,test,w4a4,77.0,0.0,1,,\n"));
  CHECK_THAT(csv, Catch::Contains("difference,none,adaround,test,w4a4,5.0,1.0,3,"));
}
