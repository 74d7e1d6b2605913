#pragma once
// The `quant:` section of a config: quant::QuantOptions as the edge of the program sees them.
// Parses and validates the YAML section, writes it back (YAML, and JSON for result headers,
// which is also what comparing two settings compares), reads it back from a result header,
// and describes itself in one line. The library takes the quant::QuantOptions it derives from.
#include <nlohmann/json.hpp>
#include <string>

#include "config/yaml_reader.h"
#include "quant/options.h"

namespace qrobust::config {

struct QuantSettings : quant::QuantOptions {
  QuantSettings() = default;
  QuantSettings(const quant::QuantOptions& options) : quant::QuantOptions(options) {}  // NOLINT: implicit

  static QuantSettings read(YamlSection section);
  // From a result header (the flat keys every sweep file holds); a missing or bad key is a
  // RuntimeFailure naming `source`.
  static QuantSettings from_json(const nlohmann::json& header, const std::string& source);

  void write(YAML::Emitter& out) const;  // a map of every key
  nlohmann::json to_json() const;
  // "weights per_tensor symmetric minmax, activations asymmetric minmax, first/last layer
  // quantize, BN folded yes, recipe round-to-nearest"
  std::string describe() const;
  // The PTQ steps after range setting: "round-to-nearest", "CLE + BC empirical + AdaRound 1000 it, ..."
  std::string recipe() const;

  bool operator==(const QuantSettings& other) const { return to_json() == other.to_json(); }
  bool operator!=(const QuantSettings& other) const { return !(*this == other); }
};

}  // namespace qrobust::config
