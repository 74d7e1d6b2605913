#pragma once
// The `mixed_precision:` section of a config: mixed_precision::MixedPrecisionOptions as the edge of
// the program sees them. Parses and validates the YAML section and writes it back (YAML, and
// JSON for result headers, which is also what comparing two settings compares).
#include <nlohmann/json.hpp>

#include "config/yaml_reader.h"
#include "mixed_precision/options.h"

namespace qrobust::config {

struct MixedPrecisionSettings : mixed_precision::MixedPrecisionOptions {
  static MixedPrecisionSettings read(YamlSection section);
  void write(YAML::Emitter& out) const;  // a map of every key
  nlohmann::json to_json() const;
  bool operator==(const MixedPrecisionSettings& other) const { return to_json() == other.to_json(); }
};

}  // namespace qrobust::config
