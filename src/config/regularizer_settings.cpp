#include "config/regularizer_settings.h"

#include <sstream>

namespace qrobust::config {

RegularizerSettings RegularizerSettings::read(YamlSection s, int64_t epochs, int64_t batch_size) {
  using regularize::GradientMethod;
  RegularizerSettings r;
  r.penalty(s.choice("name", r.penalty(), regularize::kPenaltyNames));
  // Each key belongs to some penalties; giving it to another is a mistake worth reporting.
  auto only_for = [&](const std::string& key, bool applies, const std::string& who) {
    if (s.has(key) && !applies) s.fail(key, std::string("is not used by regularizer ") + r.name() + " (only by " + who + ")");
  };
  const bool grad_norm = r.is_gradient_norm();
  for (const char* key : {"lambda_w", "lambda_a", "fd_epsilon", "every", "subbatch"}) only_for(key, grad_norm, "grad_l1, grad_l2");
  only_for("lambda", r.is_weight_penalty(), "dq_lipschitz, kurtosis");
  only_for("kurtosis_target", r.penalty() == regularize::Penalty::kKurtosis, "kurtosis");
  only_for("start_epoch", r.penalty() != regularize::Penalty::kNone, "a penalty");
  if (s.has("method") && !grad_norm)
    s.fail("method", std::string("finite_difference and double_backprop apply to gradient-norm penalties (grad_l1, grad_l2), not ") +
                         r.name());
  for (auto [key, value] : {std::pair<const char*, double*>{"lambda_w", &r.lambda_w()}, {"lambda_a", &r.lambda_a()},
                             {"lambda", &r.lambda()}}) {
    *value = s.number(key, *value);
    if (*value < 0) s.fail(key, "must be >= 0, got " + number_text(*value));
  }
  r.kurtosis_target(s.number("kurtosis_target", r.kurtosis_target()));
  r.start_epoch(s.integer("start_epoch", r.start_epoch()));
  if (r.start_epoch() < 0 || r.start_epoch() >= epochs)
    s.fail("start_epoch", "must be in 0..epochs-1 (" + std::to_string(epochs - 1) + "), got " + std::to_string(r.start_epoch()));
  r.method(s.choice("method", r.method(), regularize::kGradientMethodNames));
  r.fd_epsilon(s.number("fd_epsilon", r.fd_epsilon()));
  if (!(r.fd_epsilon() > 0)) s.fail("fd_epsilon", "must be > 0, got " + number_text(r.fd_epsilon()));
  r.every(s.integer("every", r.every()));
  if (r.every() < 1 || r.every() > 1000)
    s.fail("every", "must be 1..1000 (1: every step), got " + std::to_string(r.every()));
  r.subbatch(s.integer("subbatch", r.subbatch()));
  if (r.subbatch() != 0 && (r.subbatch() < 2 || r.subbatch() >= batch_size))
    s.fail("subbatch", "must be 0 (the whole batch) or 2..data.batch_size-1 (" + std::to_string(batch_size - 1) + "), got " +
                           std::to_string(r.subbatch()));
  if (r.subbatch() != 0 && r.method() != GradientMethod::kDoubleBackprop)
    s.fail("subbatch", "applies to method double_backprop (finite_difference takes both passes on the whole batch)");
  s.finish();
  return r;
}

void RegularizerSettings::write(YAML::Emitter& out) const {
  out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << name();
  if (is_gradient_norm())
    out << YAML::Key << "lambda_w" << YAML::Value << lambda_w() << YAML::Key << "lambda_a" << YAML::Value << lambda_a()
        << YAML::Key << "method" << YAML::Value << util::name_of(method(), regularize::kGradientMethodNames) << YAML::Key
        << "fd_epsilon" << YAML::Value << fd_epsilon() << YAML::Key << "every" << YAML::Value << every() << YAML::Key
        << "subbatch" << YAML::Value << subbatch();
  if (is_weight_penalty()) out << YAML::Key << "lambda" << YAML::Value << lambda();
  if (penalty() == regularize::Penalty::kKurtosis) out << YAML::Key << "kurtosis_target" << YAML::Value << kurtosis_target();
  if (penalty() != regularize::Penalty::kNone) out << YAML::Key << "start_epoch" << YAML::Value << start_epoch();
  out << YAML::EndMap;
}

std::string RegularizerSettings::describe() const {
  std::ostringstream out;
  out << name();
  if (is_gradient_norm()) {
    out << " (lambda_w " << lambda_w() << ", lambda_a " << lambda_a() << ", "
        << util::name_of(method(), regularize::kGradientMethodNames);
    if (every() > 1) out << ", every " << every();
    if (subbatch() > 0) out << ", subbatch " << subbatch();
    out << ")";
  } else if (is_weight_penalty()) {
    out << " (lambda " << lambda() << ")";
  }
  return out.str();
}

bool RegularizerSettings::operator==(const RegularizerSettings& other) const {
  YAML::Emitter a, b;
  a.SetDoublePrecision(17);
  b.SetDoublePrecision(17);
  write(a);
  other.write(b);
  return std::string(a.c_str()) == b.c_str();
}

}  // namespace qrobust::config
