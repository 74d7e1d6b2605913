#include "deploy/torch_export.h"

#include <torch/csrc/jit/serialization/pickle.h>

#include "util/atomic_file.h"

namespace qrobust::deploy {
namespace {

using Dict = c10::impl::GenericDict;

Dict string_dict() { return Dict(c10::StringType::get(), c10::AnyType::get()); }

void insert_grid(Dict& entry, const quant::AffineParams& grid) {
  entry.insert("scale", grid.scale.detach().cpu().to(torch::kFloat).flatten().clone());
  entry.insert("zero_point", grid.zero_point.detach().cpu().to(torch::kInt).flatten().clone());
  entry.insert("quant_min", grid.quant_min);
  entry.insert("quant_max", grid.quant_max);
}

}  // namespace

void write_torch(const models::ClassifierImpl& model, const DeployedModel& deployed, const std::string& config_yaml,
                 const std::string& plan_json, int64_t draw, const std::string& path) {
  const auto& input = model.input_spec();
  auto dict = string_dict();
  dict.insert("format", std::string("qrobust-quantized-model"));
  dict.insert("version", int64_t{1});
  dict.insert("architecture", model.architecture());
  dict.insert("num_classes", input.num_classes);
  dict.insert("input_shape", std::vector<int64_t>{input.channels, input.height, input.width});
  dict.insert("config", config_yaml);
  dict.insert("plan", plan_json);
  dict.insert("draw", draw);
  auto layers = string_dict();
  for (const auto& layer : deployed.layers) {
    auto entry = string_dict();
    entry.insert("bits", int64_t{layer.bits});
    entry.insert("weight", layer.weight.detach().cpu().contiguous());
    entry.insert("bias", layer.bias.defined() ? c10::IValue(layer.bias.detach().cpu().contiguous()) : c10::IValue());
    if (layer.grid) {
      const auto integers = grid_integers(layer.weight, *layer.grid);
      entry.insert("weight_int", integers.to(layer.grid->quant_min < 0 ? torch::kChar : torch::kByte));
      insert_grid(entry, *layer.grid);
      entry.insert("axis", int64_t{layer.grid->per_channel ? 0 : -1});
    }
    layers.insert(layer.name, entry);
  }
  dict.insert("layers", layers);
  auto points = string_dict();
  for (const auto& point : deployed.points) {
    auto entry = string_dict();
    entry.insert("bits", int64_t{point.bits});
    if (point.grid) insert_grid(entry, *point.grid);
    points.insert(point.name, entry);
  }
  dict.insert("points", points);
  const auto bytes = torch::pickle_save(dict);
  util::write_file_atomically(path, std::string(bytes.begin(), bytes.end()));
}

}  // namespace qrobust::deploy
