#include "quant/bit_plan_file.h"

#include <filesystem>

#include "util/atomic_file.h"
#include "util/errors.h"

namespace qrobust::quant {
namespace {

constexpr const char* kFormat = "qrobust-bit-plan";

nlohmann::json elements_json(const std::vector<std::string>& names, const std::vector<int>& bits) {
  auto out = nlohmann::json::array();
  for (size_t i = 0; i < names.size(); ++i) out.push_back({{"name", names[i]}, {"bits", bits[i]}});
  return out;
}

std::vector<std::string> layer_names(const models::ClassifierImpl& model) {
  std::vector<std::string> names;
  for (const auto& layer : model.quant_layers()) names.push_back(layer.name);
  return names;
}

std::vector<std::string> point_names(const models::ClassifierImpl& model) {
  std::vector<std::string> names;
  for (const auto& point : model.quant_points()) names.push_back(point->name());
  return names;
}

// The bits of every element listed under `key`, checked against the model's names in order.
std::vector<int> read_elements(const nlohmann::json& doc, const char* key, const std::vector<std::string>& names,
                               const std::string& source) {
  const auto fail = [&](const std::string& message) { throw UsageError(source + ": " + key + message); };
  const auto it = doc.find(key);
  if (it == doc.end() || !it->is_array()) fail(": expected a list of {name, bits}");
  if (it->size() != names.size())
    fail(": the model has " + std::to_string(names.size()) + ", the plan lists " + std::to_string(it->size()));
  std::vector<int> bits;
  for (size_t i = 0; i < names.size(); ++i) {
    const auto& element = (*it)[i];
    const std::string where = "[" + std::to_string(i) + "]";
    if (!element.is_object() || element.size() != 2 || !element.contains("name") || !element.contains("bits"))
      fail(where + ": expected exactly the keys name and bits");
    if (!element["name"].is_string() || element["name"].get<std::string>() != names[i])
      fail(where + ": expected the element " + names[i] + ", got " + element["name"].dump());
    const auto& value = element["bits"];
    if (!value.is_number_integer()) fail(where + " (" + names[i] + "): bits must be an integer, got " + value.dump());
    const auto b = value.get<int64_t>();
    if (!((b >= 2 && b <= 16) || b == kFloatBits))
      fail(where + " (" + names[i] + "): bits must be 2..16 or 32 (float), got " + std::to_string(b));
    bits.push_back(static_cast<int>(b));
  }
  return bits;
}

}  // namespace

nlohmann::json bit_plan_json(const BitPlan& plan, const models::ClassifierImpl& model, const nlohmann::json& about) {
  nlohmann::json doc{{"format", kFormat},
                     {"version", 1},
                     {"architecture", model.architecture()},
                     {"layers", elements_json(layer_names(model), plan.layer_bits)},
                     {"points", elements_json(point_names(model), plan.point_bits)}};
  if (!about.is_null()) doc["about"] = about;
  return doc;
}

BitPlan parse_bit_plan(const std::string& text, const std::string& source, const models::ClassifierImpl& model) {
  const auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) throw UsageError(source + ": not a JSON document");
  if (!doc.is_object()) throw UsageError(source + ": expected a JSON object");
  for (const auto& [key, value] : doc.items())
    if (key != "format" && key != "version" && key != "architecture" && key != "layers" && key != "points" &&
        key != "about")
      throw UsageError(source + ": unknown key \"" + key + "\"");
  if (doc.value("format", nlohmann::json()) != kFormat)
    throw UsageError(source + ": not a bit plan (format must be \"" + kFormat + "\")");
  if (doc.value("version", nlohmann::json()) != 1) throw UsageError(source + ": unsupported version; expected 1");
  const auto architecture = doc.value("architecture", nlohmann::json());
  if (!architecture.is_string() || architecture.get<std::string>() != model.architecture())
    throw UsageError(source + ": a plan for " + architecture.dump() + ", not for the model's architecture \"" +
                     model.architecture() + "\"");
  BitPlan plan;
  plan.layer_bits = read_elements(doc, "layers", layer_names(model), source);
  plan.point_bits = read_elements(doc, "points", point_names(model), source);
  return plan;
}

BitPlan read_bit_plan(const std::string& path, const models::ClassifierImpl& model) {
  if (!std::filesystem::is_regular_file(path)) throw UsageError(path + ": plan file not found");
  std::string text;
  try {
    text = util::read_file(path, util::kMaxTextFileBytes);
  } catch (const RuntimeFailure& e) {
    throw UsageError(e.what());
  }
  return parse_bit_plan(text, path, model);
}

}  // namespace qrobust::quant
