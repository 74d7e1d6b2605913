#pragma once
// A BitPlan as a file: what `qrobust mixed-precision` writes for each budget and `sweep-bits
// --plan` reads back. JSON naming the architecture and every element by name, in model order:
//   {"format": "qrobust-bit-plan", "version": 1, "architecture": "resnet20",
//    "layers": [{"name": "conv1", "bits": 8}, ...], "points": [{"name": "input_point", "bits": 8}, ...],
//    "about": {...}}                  // optional, free-form: where the plan came from
// Bits are 2..16, or 32 for float. A plan file is untrusted input: reading checks all of it
// against the model and names what is wrong.
#include <nlohmann/json.hpp>
#include <string>

#include "models/classifier.h"
#include "quant/calibration.h"

namespace qrobust::quant {

nlohmann::json bit_plan_json(const BitPlan& plan, const models::ClassifierImpl& model, const nlohmann::json& about = {});

// Reads a plan for `model`: a damaged file, another architecture, other element names or
// bits out of range is a UsageError naming `path` and the first fault.
BitPlan read_bit_plan(const std::string& path, const models::ClassifierImpl& model);
// The same for text already read; `source` names it in errors.
BitPlan parse_bit_plan(const std::string& text, const std::string& source, const models::ClassifierImpl& model);

}  // namespace qrobust::quant
