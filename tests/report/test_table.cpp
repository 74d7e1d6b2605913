#include <catch2/catch.hpp>

#include <filesystem>

#include "report/table.h"
#include "test_support.h"
#include "util/atomic_file.h"

using namespace qrobust;

namespace {
nlohmann::json sweep_doc(double fp32, double w4a4, const std::string& granularity) {
  return {{"header", {{"weight_granularity", granularity}, {"samples", 100}, {"checkpoint", "x"}}},
          {"rows", {{{"config", "fp32"}, {"accuracy", fp32}}, {{"config", "w4a4"}, {"accuracy", w4a4}}}}};
}
}  // namespace

TEST_CASE("tables have one row per variant and one column per configuration, per quantizer and split") {
  const std::vector<report::SweepEntry> entries = {
      {"none", "per_tensor", "test", sweep_doc(90.0, 70.5, "per_tensor")},
      {"none", "per_channel", "test", sweep_doc(90.0, 80.25, "per_channel")},
      {"grad_l1", "per_tensor", "test", sweep_doc(89.5, 85.0, "per_tensor")},
      {"grad_l1", "per_channel", "test", sweep_doc(89.5, 86.0, "per_channel")}};
  const auto table = report::make_table("demo", entries);
  CHECK(table["columns"] == nlohmann::json({"fp32", "w4a4"}));
  REQUIRE(table["tables"].size() == 2);
  CHECK(table["tables"][0]["quantizer"] == "per_tensor");
  CHECK(table["tables"][0]["rows"][1]["variant"] == "grad_l1");
  CHECK(table["tables"][0]["rows"][1]["accuracy"]["w4a4"] == 85.0);
  CHECK(table["tables"][1]["rows"][0]["accuracy"]["w4a4"] == 80.25);
  CHECK_FALSE(table["tables"][0]["settings"].contains("checkpoint"));  // per-variant, not per table

  testing::TempDir dir;
  report::write_table(table, dir.path());
  CHECK(nlohmann::json::parse(util::read_file(dir.file("table.json"))) == table);
  const auto md = util::read_file(dir.file("table.md"));
  CHECK_THAT(md, Catch::Contains("## per_channel, test split"));
  CHECK_THAT(md, Catch::Contains("| variant | fp32 | w4a4 |"));
  CHECK_THAT(md, Catch::Contains("| grad_l1 | 89.50 | 85.00 |"));
  const auto csv = util::read_file(dir.file("table.csv"));
  CHECK_THAT(csv, Catch::StartsWith("variant,quantizer,split,fp32,w4a4\n"));
  CHECK_THAT(csv, Catch::Contains("none,per_channel,test,90.0,80.25\n"));

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
