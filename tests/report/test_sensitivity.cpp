// The experiment's sensitivity table (report/sensitivity.h): its per-variant summary names the
// element most fragile alone and the one whose float copy recovers the most.
#include <catch2/catch.hpp>

#include "report/sensitivity.h"
#include "test_support.h"
#include "util/atomic_file.h"

using namespace qrobust;

namespace {

// One run's sensitivity document: per element (name, one-in accuracy, one-out accuracy).
nlohmann::json sensitivity(double fp32, double all, const std::vector<std::tuple<std::string, double, double>>& rows) {
  nlohmann::json doc = {{"header", {{"bits", 4}, {"split", "test"}, {"first_last", "quantize"}}},
                        {"fp32", {{"accuracy", fp32}}},
                        {"all", {{"accuracy", all}}},
                        {"rows", nlohmann::json::array()}};
  for (const auto& [name, in, out] : rows)
    doc["rows"].push_back({{"kind", "weights"}, {"name", name}, {"one_in", {{"accuracy", in}}},
                           {"one_out", {{"accuracy", out}}}, {"bound_term", 0.1}});
  return doc;
}

}  // namespace

TEST_CASE("the sensitivity table names, per variant, the most fragile element and the one that recovers the most") {
  testing::TempDir dir;
  // For `none`, conv1 is the most fragile alone and, on average over the two seeds, leaving it
  // float recovers the most (fc does on seed 2); for `grad_l1`, conv1 is the most fragile and
  // fc recovers the most.
  const std::vector<report::SensitivityEntry> entries{
      {"none", 1, "all_layers", sensitivity(88, 40, {{"conv1", 80, 76}, {"fc", 87, 45}})},
      {"none", 2, "all_layers", sensitivity(86, 50, {{"conv1", 82, 60}, {"fc", 85, 62}})},
      {"grad_l1", 1, "all_layers", sensitivity(87, 60, {{"conv1", 79, 61}, {"fc", 84, 70}})},
  };
  report::write_sensitivity_table("quick", entries, dir.path());
  const auto md = util::read_file(dir.file("sensitivity.md"));
  CHECK_THAT(md, Catch::Contains("- none: float 87.00 ± 1.41 %, everything quantized 45.00 ± 7.07 %. Most fragile "
                                 "alone: **W conv1** (only it quantized: 81.00 ± 1.41 %). Left float, **W conv1** "
                                 "recovers the most (everything else quantized: 68.00 ± 11.31 %)."));
  CHECK_THAT(md, Catch::Contains("- grad_l1: float 87.00 %, everything quantized 60.00 %. Most fragile alone: **W conv1** "
                                 "(only it quantized: 79.00 %). Left float, **W fc** recovers the most (everything "
                                 "else quantized: 70.00 %)."));
}
