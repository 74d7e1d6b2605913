#include <catch2/catch.hpp>

#include "models/registry.h"
#include "quant/bit_plan_file.h"
#include "test_support.h"
#include "util/errors.h"

using namespace qrobust;

namespace {

quant::BitPlan mixed_plan(const models::ClassifierImpl& model) {
  quant::BitPlan plan;
  for (size_t i = 0; i < model.quant_layers().size(); ++i) plan.layer_bits.push_back(i == 0 ? 8 : 2 + static_cast<int>(i % 5));
  for (size_t i = 0; i < model.quant_points().size(); ++i) plan.point_bits.push_back(i % 2 ? 32 : 6);
  return plan;
}

}  // namespace

TEST_CASE("a bit plan file round-trips every element's bits and keeps its about object", "[corpus]") {
  const auto model = models::make_model("resnet8", {3, 32, 32, 10}, 4);
  const auto plan = mixed_plan(*model);
  const auto doc = quant::bit_plan_json(plan, *model, {{"criterion", "first_order"}, {"budget", 4}});
  testing::save_corpus_sample("bit_plan", doc.dump(2));
  const auto read = quant::parse_bit_plan(doc.dump(), "plan.json", *model);
  CHECK(read.layer_bits == plan.layer_bits);
  CHECK(read.point_bits == plan.point_bits);
  CHECK(doc["layers"][0]["name"] == "conv1");
  CHECK(doc["about"]["criterion"] == "first_order");

  testing::TempDir dir;
  testing::write_bytes(dir.file("plan.json"), doc.dump());
  CHECK(quant::read_bit_plan(dir.file("plan.json"), *model).layer_bits == plan.layer_bits);
  CHECK_THROWS_MATCHES(quant::read_bit_plan(dir.file("none.json"), *model), UsageError,
                       Catch::Message(dir.file("none.json") + ": plan file not found"));
}

TEST_CASE("a damaged plan, another architecture's plan or bits out of range is a one-line usage error", "[corpus]") {
  const auto model = models::make_model("resnet8", {3, 32, 32, 10}, 4);
  const auto good = quant::bit_plan_json(mixed_plan(*model), *model);
  auto fails = [&](const std::string& text, const std::string& message) {
    testing::save_corpus_sample("bit_plan", text);
    CHECK_THROWS_MATCHES(quant::parse_bit_plan(text, "p.json", *model), UsageError, Catch::Message("p.json: " + message));
  };
  const auto text = good.dump();
  fails(text.substr(0, text.size() / 2), "not a JSON document");
  fails("[1, 2]", "expected a JSON object");
  auto edited = [&](const std::function<void(nlohmann::json&)>& edit) {
    auto doc = good;
    edit(doc);
    return doc.dump();
  };
  fails(edited([](auto& d) { d["format"] = "something"; }), "not a bit plan (format must be \"qrobust-bit-plan\")");
  fails(edited([](auto& d) { d["version"] = 2; }), "unsupported version; expected 1");
  fails(edited([](auto& d) { d["extra"] = 1; }), "unknown key \"extra\"");
  fails(edited([](auto& d) { d["architecture"] = "vgg_like"; }),
        "a plan for \"vgg_like\", not for the model's architecture \"resnet8\"");
  fails(edited([](auto& d) { d["layers"][1]["bits"] = 1; }), "layers[1] (layer1.0.conv1): bits must be 2..16 or 32 (float), got 1");
  fails(edited([](auto& d) { d["layers"][2]["bits"] = 17; }), "layers[2] (layer1.0.conv2): bits must be 2..16 or 32 (float), got 17");
  fails(edited([](auto& d) { d["points"][0]["bits"] = 4.5; }), "points[0] (input_point): bits must be an integer, got 4.5");
  fails(edited([](auto& d) { d["layers"][3]["name"] = "layer9.conv"; }),
        "layers[3]: expected the element layer2.0.conv1, got \"layer9.conv\"");
  fails(edited([](auto& d) { d["points"].erase(d["points"].begin()); }), "points: the model has 9, the plan lists 8");
  fails(edited([](auto& d) { d.erase("points"); }), "points: expected a list of {name, bits}");
  fails(edited([](auto& d) { d["layers"][0]["extra"] = true; }), "layers[0]: expected exactly the keys name and bits");
  // A plan for a model with other element names, though its architecture field is edited to match.
  const auto vgg = models::make_model("vgg_like", {3, 32, 32, 10}, 8);
  auto other = quant::bit_plan_json(mixed_plan(*vgg), *vgg);
  other["architecture"] = "resnet8";
  fails(other.dump(), "layers[1]: expected the element layer1.0.conv1, got \"conv2\"");
}
