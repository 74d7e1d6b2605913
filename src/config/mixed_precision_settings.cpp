#include "config/mixed_precision_settings.h"

#include <algorithm>
#include <set>

#include "quant/quantizer.h"

namespace qrobust::config {
namespace {

// Candidate bits: 2..16 or 32 (float), each once.
std::vector<int> read_bits(YamlSection& s, const std::string& key, const std::vector<int>& fallback) {
  std::vector<int64_t> defaults(fallback.begin(), fallback.end());
  const auto values = s.integers(key, defaults);
  if (values.empty()) s.fail(key, "needs at least one bit-width");
  std::set<int64_t> seen;
  std::vector<int> bits;
  for (const auto b : values) {
    if (!((b >= 2 && b <= 16) || b == quant::kFloatBits))
      s.fail(key, "bit-widths must be 2..16 or 32 (float), got " + std::to_string(b));
    if (!seen.insert(b).second) s.fail(key, "lists " + std::to_string(b) + " twice");
    bits.push_back(static_cast<int>(b));
  }
  return bits;
}

std::string criterion_choices() {
  std::string out;
  for (const auto& name : util::all_names(mixed_precision::kCriterionNames)) out += (out.empty() ? "" : ", ") + name;
  return out;
}

}  // namespace

MixedPrecisionSettings MixedPrecisionSettings::read(YamlSection s) {
  MixedPrecisionSettings m;
  std::vector<std::string> default_criteria;
  for (const auto c : m.criteria()) default_criteria.push_back(util::name_of(c, mixed_precision::kCriterionNames));
  const auto names = s.strings("criteria", default_criteria);
  if (names.empty()) s.fail("criteria", "needs at least one of " + criterion_choices());
  std::vector<mixed_precision::Criterion> criteria;
  for (const auto& name : names) {
    const auto criterion = util::value_of(name, mixed_precision::kCriterionNames);
    if (!criterion)
      s.fail("criteria", "unknown criterion \"" + name + "\"; expected " + criterion_choices());
    if (std::find(criteria.begin(), criteria.end(), *criterion) != criteria.end())
      s.fail("criteria", "lists " + name + " twice");
    criteria.push_back(*criterion);
  }
  m.criteria(criteria);
  m.weight_bits(read_bits(s, "weight_bits", m.weight_bits()));
  m.act_bits(read_bits(s, "act_bits", m.act_bits()));
  m.axis(s.choice("axis", m.axis(), mixed_precision::kBudgetAxisNames));
  m.budgets(s.numbers("budgets", m.budgets()));
  if (m.budgets().empty()) s.fail("budgets", "needs at least one budget");
  for (const double b : m.budgets())
    if (!(b > 0 && b <= 1024)) s.fail("budgets", "average bits must be in (0, 1024], got " + number_text(b));
  m.score_images(s.integer("score_images", m.score_images()));
  if (m.score_images() < 1) s.fail("score_images", "must be positive, got " + std::to_string(m.score_images()));
  m.hutchinson_samples(s.integer("hutchinson_samples", m.hutchinson_samples()));
  if (m.hutchinson_samples() < 1 || m.hutchinson_samples() > 100000)
    s.fail("hutchinson_samples", "must be 1..100000, got " + std::to_string(m.hutchinson_samples()));
  s.finish();
  return m;
}

void MixedPrecisionSettings::write(YAML::Emitter& out) const {
  std::vector<std::string> names;
  for (const auto c : criteria()) names.push_back(util::name_of(c, mixed_precision::kCriterionNames));
  out << YAML::BeginMap << YAML::Key << "criteria" << YAML::Value << YAML::Flow << names
      << YAML::Key << "weight_bits" << YAML::Value << YAML::Flow << weight_bits()
      << YAML::Key << "act_bits" << YAML::Value << YAML::Flow << act_bits()
      << YAML::Key << "axis" << YAML::Value << util::name_of(axis(), mixed_precision::kBudgetAxisNames)
      << YAML::Key << "budgets" << YAML::Value << YAML::Flow << budgets()
      << YAML::Key << "score_images" << YAML::Value << score_images()
      << YAML::Key << "hutchinson_samples" << YAML::Value << hutchinson_samples() << YAML::EndMap;
}

nlohmann::json MixedPrecisionSettings::to_json() const {
  std::vector<std::string> names;
  for (const auto c : criteria()) names.push_back(util::name_of(c, mixed_precision::kCriterionNames));
  return {{"criteria", names},
          {"weight_bits", weight_bits()},
          {"act_bits", act_bits()},
          {"axis", util::name_of(axis(), mixed_precision::kBudgetAxisNames)},
          {"budgets", budgets()},
          {"score_images", score_images()},
          {"hutchinson_samples", hutchinson_samples()}};
}

}  // namespace qrobust::config
