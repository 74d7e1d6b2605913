#include "train/torchvision_import.h"

#include <torch/torch.h>

#include <filesystem>
#include <map>

#include "config/config.h"
#include "models/registry.h"
#include "train/checkpoint.h"
#include "train/python_state_dict.h"
#include "util/errors.h"

namespace qrobust::train {
namespace {

// The state dict's tensors; a "module." prefix (nn.DataParallel) is dropped.
std::map<std::string, torch::Tensor> read_state_dict(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw UsageError(path + ": state dict not found");
  std::map<std::string, torch::Tensor> tensors;
  for (auto& [name, tensor] : read_python_state_dict(path))
    tensors[name.rfind("module.", 0) == 0 ? name.substr(7) : name] = tensor;
  return tensors;
}

}  // namespace

ImportedWeights import_torchvision(const TorchvisionImport& request) {
  if (request.model != "resnet18" && request.model != "resnet34" && request.model != "resnet50")
    throw UsageError("import-torchvision: --model must be resnet18, resnet34 or resnet50, got \"" + request.model + "\"");
  if (request.image_size < 32) throw UsageError("import-torchvision: --image-size must be at least 32");
  const auto state = read_state_dict(request.state_dict);
  const auto stem = state.find("conv1.weight"), fc = state.find("fc.weight");
  if (stem == state.end() || fc == state.end() || stem->second.dim() != 4 || fc->second.dim() != 2)
    throw UsageError(request.state_dict + ": not a torchvision ResNet (no conv1.weight / fc.weight)");

  ImportedWeights imported;
  imported.width = stem->second.size(0);
  imported.num_classes = fc->second.size(0);
  config::ExperimentConfig config;
  config.name = std::filesystem::path(request.out).stem().string();
  config.model.name = request.model;
  config.model.width = imported.width == 64 ? 0 : imported.width;
  config.data.dataset = "imagefolder";
  config.data.root = config::default_data_root("imagefolder");
  config.data.image_size = request.image_size;
  config.data.resize = request.image_size * 256 / 224;
  auto model = models::make_model(request.model, {3, request.image_size, request.image_size, imported.num_classes},
                                  config.model.width);

  auto named = model->state();
  for (const auto& item : named) {
    const auto found = state.find(item.key());
    if (found == state.end())
      throw UsageError(request.state_dict + ": no tensor \"" + item.key() + "\", which " + request.model + " has");
    if (found->second.sizes() != item.value().sizes())
      throw UsageError(request.state_dict + ": tensor \"" + item.key() + "\" is " + shape_text(found->second.sizes()) +
                       ", " + request.model + " (width " + std::to_string(imported.width) + ", " +
                       std::to_string(imported.num_classes) + " classes) has " + shape_text(item.value().sizes()));
  }
  for (const auto& [name, tensor] : state)
    if (!named.contains(name))
      throw UsageError(request.state_dict + ": tensor \"" + name + "\" has no place in " + request.model +
                       " (another architecture?)");
  {
    torch::NoGradGuard no_grad;
    for (auto& item : named) item.value().copy_(state.at(item.key()));
  }
  imported.tensors = static_cast<int64_t>(named.size());
  save_checkpoint(request.out, *model, nullptr, 0, config::to_yaml(config));
  return imported;
}

}  // namespace qrobust::train
