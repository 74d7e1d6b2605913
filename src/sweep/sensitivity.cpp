#include "sweep/sensitivity.h"

#include "quant/calibration.h"
#include "sweep/sweep.h"
#include "util/errors.h"
#include "util/progress.h"
#include "util/provenance.h"

namespace qrobust::sweep {

nlohmann::json run_sensitivity(const config::ExperimentConfig& config, const std::string& checkpoint,
                               const SensitivityOptions& options) {
  quant::check_bits(options.bits, "--bits");  // before any work
  return analyse_checkpoint(config, checkpoint, [&](models::ClassifierImpl& model, const data::DataSplits& splits,
                                                    torch::Device device) {
    return sensitivity_model(model, splits, config, options, device);
  });
}

nlohmann::json sensitivity_model(models::ClassifierImpl& model, const data::DataSplits& splits,
                                 const config::ExperimentConfig& config, const SensitivityOptions& options,
                                 torch::Device device) {
  quant::check_bits(options.bits, "--bits");
  auto prepared = prepare_model(model, splits, config, options.split, 1, device);
  auto& quantizer = *prepared.quantizer;
  const auto all = quantizer.plan(options.bits, options.bits);
  const auto none = quantizer.float_plan();
  const int64_t batch = config.data.eval_batch_size;

  auto evaluate = [&](const quant::BitPlan& plan) {
    const quant::QuantizedModelScope quantized(quantizer, plan);
    return evaluation::evaluate(model, *prepared.images, splits.info, batch, device);
  };
  auto result_json = [](const evaluation::EvalResult& r) { return nlohmann::json{{"accuracy", r.accuracy}, {"loss", r.loss}}; };
  const auto bound = first_order_bound(prepared.gradients, quantizer.weight_steps(all.layer_bits),
                                       quantizer.activation_steps(all.point_bits, 0));

  const auto& layers = model.quant_layers();
  const auto& points = model.quant_points();
  util::ProgressLine progress("sensitivity", static_cast<int64_t>(layers.size() + points.size()), "elements");
  nlohmann::json rows = nlohmann::json::array();
  auto add_row = [&](const char* kind, const std::string& name, size_t index, int bits, const quant::BitPlan& one_in,
                     const quant::BitPlan& one_out, double bound_term) {
    if (options.stop && options.stop->load())
      throw SweepInterrupted("interrupted before " + name + " in the sensitivity analysis");
    const auto in = evaluate(one_in), out = evaluate(one_out);
    rows.push_back({{"kind", kind},
                    {"name", name},
                    {"index", index},
                    {"bits", bits},
                    {"one_in", result_json(in)},
                    {"one_out", result_json(out)},
                    {"bound_term", bound_term},
                    {"loss_increase", in.loss - prepared.reference.loss}});
    if (options.progress) progress.update(static_cast<int64_t>(rows.size()), name);
  };
  for (size_t i = 0; i < layers.size(); ++i) {
    auto in = none, out = all;
    in.layer_bits[i] = all.layer_bits[i];
    out.layer_bits[i] = quant::kFloatBits;
    add_row("weights", layers[i].name, i, all.layer_bits[i], in, out, bound.layers[i]);
  }
  for (size_t i = 0; i < points.size(); ++i) {
    auto in = none, out = all;
    in.point_bits[i] = all.point_bits[i];
    out.point_bits[i] = quant::kFloatBits;
    add_row("activations", points[i]->name(), i, all.point_bits[i], in, out, bound.points[i]);
  }
  if (options.progress) progress.finish();

  const auto everything = evaluate(all);
  auto header = settings_header(config, splits, options.split);
  header["bits"] = options.bits;
  header["recipe"] = config.quant.recipe();
  header["recipe_cost"] = recipe_cost_json(prepared);
  header["git_sha"] = util::git_sha();
  header["libtorch"] = util::libtorch_version();
  nlohmann::json all_json = result_json(everything);
  all_json["bound"] = bound.total();
  all_json["loss_increase"] = everything.loss - prepared.reference.loss;
  return {{"header", header}, {"fp32", result_json(prepared.reference)}, {"all", all_json}, {"rows", rows}};
}

}  // namespace qrobust::sweep
