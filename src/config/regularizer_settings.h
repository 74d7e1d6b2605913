#pragma once
// The `regularizer:` section of a config: regularize::RegularizerOptions as the edge of the
// program sees them. Parses and validates the YAML section (against the schedule's length and
// the batch size), writes back only the keys the chosen penalty reads (so the text parses
// again), compares, and describes itself in one line. The library takes the
// regularize::RegularizerOptions it derives from.
#include <string>

#include "config/yaml_reader.h"
#include "regularize/options.h"

namespace qrobust::config {

struct RegularizerSettings : regularize::RegularizerOptions {
  RegularizerSettings() = default;
  RegularizerSettings(const regularize::RegularizerOptions& options) : regularize::RegularizerOptions(options) {}  // NOLINT: implicit

  static RegularizerSettings read(YamlSection section, int64_t epochs, int64_t batch_size);
  void write(YAML::Emitter& out) const;
  // "grad_l1 (lambda_w 3e-05, lambda_a 3e-05, double_backprop, every 4)", "none"
  std::string describe() const;
  const char* name() const { return util::name_of(penalty(), regularize::kPenaltyNames); }

  bool operator==(const RegularizerSettings& other) const;
  bool operator!=(const RegularizerSettings& other) const { return !(*this == other); }
};

}  // namespace qrobust::config
