// A bit plan file's text (quant/bit_plan_file.h) against a ResNet-8: JSON parsing and every
// check of the plan; a plan that reads must write back to the same plan.
#include "fuzz_input.h"
#include "models/registry.h"
#include "quant/bit_plan_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qrobust;
  static const auto model = models::make_model("resnet8", {3, 32, 32, 10}, 4);
  fuzz::expect_clean([&] {
    const auto plan = quant::parse_bit_plan(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json", *model);
    const auto again = quant::parse_bit_plan(quant::bit_plan_json(plan, *model).dump(), "round-trip.json", *model);
    if (again.layer_bits != plan.layer_bits || again.point_bits != plan.point_bits) std::abort();
  });
  return 0;
}
