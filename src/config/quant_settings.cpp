#include "config/quant_settings.h"

#include <sstream>

namespace qrobust::config {

QuantSettings QuantSettings::read(YamlSection s) {
  QuantSettings q;
  q.weight_granularity(s.choice("weight_granularity", q.weight_granularity(), quant::kGranularityNames));
  q.weight_symmetric(s.boolean("weight_symmetric", q.weight_symmetric()));
  q.act_symmetric(s.boolean("act_symmetric", q.act_symmetric()));
  q.weight_estimator(s.choice("weight_estimator", q.weight_estimator(), quant::kEstimatorNames));
  q.act_estimator(s.choice("act_estimator", q.act_estimator(), quant::kEstimatorNames));
  q.percentile(s.number("percentile", q.percentile()));
  if (!(q.percentile() > 50 && q.percentile() <= 100))
    s.fail("percentile", "must be in (50, 100], got " + number_text(q.percentile()));
  q.first_last(s.choice("first_last", q.first_last(), quant::kFirstLastNames));
  q.bn_fold(s.boolean("bn_fold", q.bn_fold()));
  q.calibration_samples(s.integer("calibration_samples", q.calibration_samples()));
  if (q.calibration_samples() < 1)
    s.fail("calibration_samples", "must be positive, got " + std::to_string(q.calibration_samples()));
  s.finish();
  return q;
}

namespace {

template <class E, size_t N>
E named(const nlohmann::json& header, const char* key, const util::Names<E, N>& names, const std::string& source) {
  const auto& value = header.at(key);
  const auto parsed = value.is_string() ? util::value_of(value.get<std::string>(), names) : std::nullopt;
  if (!parsed) throw RuntimeFailure(source + ": header." + key + ": not a known name: " + value.dump());
  return *parsed;
}

}  // namespace

QuantSettings QuantSettings::from_json(const nlohmann::json& header, const std::string& source) {
  QuantSettings q;
  try {
    q.weight_granularity(named(header, "weight_granularity", quant::kGranularityNames, source));
    q.weight_symmetric(header.at("weight_symmetric").get<bool>());
    q.act_symmetric(header.at("act_symmetric").get<bool>());
    q.weight_estimator(named(header, "weight_estimator", quant::kEstimatorNames, source));
    q.act_estimator(named(header, "act_estimator", quant::kEstimatorNames, source));
    q.percentile(header.at("percentile").get<double>());
    q.first_last(named(header, "first_last", quant::kFirstLastNames, source));
    q.bn_fold(header.at("bn_fold").get<bool>());
    q.calibration_samples(header.at("calibration_samples").get<int64_t>());
  } catch (const nlohmann::json::exception& e) {
    throw RuntimeFailure(source + ": the quant settings in its header are incomplete or mistyped (" + e.what() + ")");
  }
  return q;
}

void QuantSettings::write(YAML::Emitter& out) const {
  out << YAML::BeginMap << YAML::Key << "weight_granularity" << YAML::Value
      << util::name_of(weight_granularity(), quant::kGranularityNames) << YAML::Key << "weight_symmetric" << YAML::Value
      << weight_symmetric() << YAML::Key << "act_symmetric" << YAML::Value << act_symmetric() << YAML::Key
      << "weight_estimator" << YAML::Value << util::name_of(weight_estimator(), quant::kEstimatorNames) << YAML::Key
      << "act_estimator" << YAML::Value << util::name_of(act_estimator(), quant::kEstimatorNames) << YAML::Key
      << "percentile" << YAML::Value << percentile() << YAML::Key << "first_last" << YAML::Value
      << util::name_of(first_last(), quant::kFirstLastNames) << YAML::Key << "bn_fold" << YAML::Value << bn_fold()
      << YAML::Key << "calibration_samples" << YAML::Value << calibration_samples() << YAML::EndMap;
}

nlohmann::json QuantSettings::to_json() const {
  return {{"weight_granularity", util::name_of(weight_granularity(), quant::kGranularityNames)},
          {"weight_symmetric", weight_symmetric()},
          {"act_symmetric", act_symmetric()},
          {"weight_estimator", util::name_of(weight_estimator(), quant::kEstimatorNames)},
          {"act_estimator", util::name_of(act_estimator(), quant::kEstimatorNames)},
          {"percentile", percentile()},
          {"first_last", util::name_of(first_last(), quant::kFirstLastNames)},
          {"bn_fold", bn_fold()},
          {"calibration_samples", calibration_samples()}};
}

std::string QuantSettings::describe() const {
  std::ostringstream out;
  out << "weights " << util::name_of(weight_granularity(), quant::kGranularityNames)
      << (weight_symmetric() ? " symmetric " : " asymmetric ") << util::name_of(weight_estimator(), quant::kEstimatorNames)
      << ", activations " << (act_symmetric() ? "symmetric " : "asymmetric ")
      << util::name_of(act_estimator(), quant::kEstimatorNames) << ", first/last layer "
      << util::name_of(first_last(), quant::kFirstLastNames) << ", BN folded " << (bn_fold() ? "yes" : "no");
  return out.str();
}

}  // namespace qrobust::config
