#pragma once
// The paper's Figure 1: per-layer ‖∂CE/∂W_l‖₁ and per-point ‖∂CE/∂a_l‖₁, as every training run
// logs them each epoch (`gradient_norms` in train_log.jsonl), variants side by side.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qrobust::report {

struct GradientNormEntry {
  std::string variant;
  int64_t seed = 0;
  nlohmann::json gradient_norms;  // {"weight_l1": {layer: value}, "activation_l1": {point: value}}
};

// The `gradient_norms` of the last record of a run's train_log.jsonl (null when it has none).
nlohmann::json last_gradient_norms(const std::string& train_log_path);

// DIR/gradient_norms.json (mean ± std over seeds per variant and element) and, with gnuplot,
// DIR/plot_gradient_norms.svg/.png (weights and activations, log scale). `layers` and `points`
// give the model's order. Returns the images written; without gnuplot, none, and `warning` says so.
std::vector<std::string> write_gradient_norms(const std::string& experiment, const std::vector<GradientNormEntry>& entries,
                                              const std::vector<std::string>& layers,
                                              const std::vector<std::string>& points, const std::string& dir,
                                              std::string& warning);

}  // namespace qrobust::report
