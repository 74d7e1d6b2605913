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
  q.equalize(s.boolean("equalize", q.equalize()));
  if (q.equalize() && !q.bn_fold()) s.fail("equalize", "cross-layer equalization needs bn_fold: true");
  q.bias_correction(s.choice("bias_correction", q.bias_correction(), quant::kBiasCorrectionNames));
  if (q.bias_correction() == quant::BiasCorrection::kAnalytical && !q.bn_fold())
    s.fail("bias_correction", "analytical bias correction reads the folded batch norms: it needs bn_fold: true");
  q.rounding(s.choice("rounding", q.rounding(), quant::kRoundingNames));
  if (s.has("adaround") && q.rounding() != quant::Rounding::kAdaRound)
    s.fail("adaround", "applies only with rounding: adaround");
  auto a = s.section("adaround");
  auto& ada = q.adaround();
  ada.iterations(a.integer("iterations", ada.iterations()));
  if (ada.iterations() < 1 || ada.iterations() > 10'000'000)
    a.fail("iterations", "must be 1..10000000, got " + std::to_string(ada.iterations()));
  ada.batch_size(a.integer("batch_size", ada.batch_size()));
  if (ada.batch_size() < 1 || ada.batch_size() > 65536)
    a.fail("batch_size", "must be 1..65536, got " + std::to_string(ada.batch_size()));
  ada.lambda(a.number("lambda", ada.lambda()));
  if (!(ada.lambda() >= 0 && ada.lambda() < 1e6)) a.fail("lambda", "must be in [0, 1e6), got " + number_text(ada.lambda()));
  ada.learning_rate(a.number("learning_rate", ada.learning_rate()));
  if (!(ada.learning_rate() > 0 && ada.learning_rate() <= 10))
    a.fail("learning_rate", "must be in (0, 10], got " + number_text(ada.learning_rate()));
  a.finish();
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
    // Headers written before the PTQ recipes existed, and round-to-nearest ones, have no recipe keys.
    q.equalize(header.value("equalize", false));
    if (header.contains("bias_correction"))
      q.bias_correction(named(header, "bias_correction", quant::kBiasCorrectionNames, source));
    if (header.contains("rounding")) q.rounding(named(header, "rounding", quant::kRoundingNames, source));
    if (q.rounding() == quant::Rounding::kAdaRound) {
      const auto& a = header.at("adaround");
      q.adaround()
          .iterations(a.at("iterations").get<int64_t>())
          .batch_size(a.at("batch_size").get<int64_t>())
          .lambda(a.at("lambda").get<double>())
          .learning_rate(a.at("learning_rate").get<double>());
    }
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
      << YAML::Key << "calibration_samples" << YAML::Value << calibration_samples() << YAML::Key << "equalize"
      << YAML::Value << equalize() << YAML::Key << "bias_correction" << YAML::Value
      << util::name_of(bias_correction(), quant::kBiasCorrectionNames) << YAML::Key << "rounding" << YAML::Value
      << util::name_of(rounding(), quant::kRoundingNames);
  if (rounding() == quant::Rounding::kAdaRound)
    out << YAML::Key << "adaround" << YAML::Value << YAML::BeginMap << YAML::Key << "iterations" << YAML::Value
        << adaround().iterations() << YAML::Key << "batch_size" << YAML::Value << adaround().batch_size() << YAML::Key
        << "lambda" << YAML::Value << adaround().lambda() << YAML::Key << "learning_rate" << YAML::Value
        << adaround().learning_rate() << YAML::EndMap;
  out << YAML::EndMap;
}

nlohmann::json QuantSettings::to_json() const {
  nlohmann::json out = {{"weight_granularity", util::name_of(weight_granularity(), quant::kGranularityNames)},
          {"weight_symmetric", weight_symmetric()},
          {"act_symmetric", act_symmetric()},
          {"weight_estimator", util::name_of(weight_estimator(), quant::kEstimatorNames)},
          {"act_estimator", util::name_of(act_estimator(), quant::kEstimatorNames)},
          {"percentile", percentile()},
          {"first_last", util::name_of(first_last(), quant::kFirstLastNames)},
          {"bn_fold", bn_fold()},
          {"calibration_samples", calibration_samples()}};
  // Recipe keys only where they differ from round-to-nearest, so that results written before the
  // recipes existed still compare equal to the settings that made them.
  if (equalize()) out["equalize"] = true;
  if (bias_correction() != quant::BiasCorrection::kNone)
    out["bias_correction"] = util::name_of(bias_correction(), quant::kBiasCorrectionNames);
  if (rounding() != quant::Rounding::kNearest) {
    out["rounding"] = util::name_of(rounding(), quant::kRoundingNames);
    out["adaround"] = {{"iterations", adaround().iterations()},
                       {"batch_size", adaround().batch_size()},
                       {"lambda", adaround().lambda()},
                       {"learning_rate", adaround().learning_rate()}};
  }
  return out;
}

std::string QuantSettings::recipe() const {
  std::vector<std::string> steps;
  if (equalize()) steps.emplace_back("CLE");
  if (bias_correction() != quant::BiasCorrection::kNone)
    steps.push_back(std::string("BC ") + util::name_of(bias_correction(), quant::kBiasCorrectionNames));
  if (rounding() == quant::Rounding::kAdaRound) {
    std::ostringstream ada;
    ada << "AdaRound " << adaround().iterations() << " it, batch " << adaround().batch_size() << ", lambda "
        << number_text(adaround().lambda()) << ", lr " << number_text(adaround().learning_rate());
    steps.push_back(ada.str());
  }
  if (steps.empty()) return "round-to-nearest";
  std::string out;
  for (const auto& step : steps) out += (out.empty() ? "" : " + ") + step;
  return out;
}

std::string QuantSettings::describe() const {
  std::ostringstream out;
  out << "weights " << util::name_of(weight_granularity(), quant::kGranularityNames)
      << (weight_symmetric() ? " symmetric " : " asymmetric ") << util::name_of(weight_estimator(), quant::kEstimatorNames)
      << ", activations " << (act_symmetric() ? "symmetric " : "asymmetric ")
      << util::name_of(act_estimator(), quant::kEstimatorNames) << ", first/last layer "
      << util::name_of(first_last(), quant::kFirstLastNames) << ", BN folded " << (bn_fold() ? "yes" : "no")
      << ", recipe " << recipe();
  return out.str();
}

}  // namespace qrobust::config
