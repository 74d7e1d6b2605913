#include "io/torchvision_import.h"

#include <torch/torch.h>

#include <filesystem>
#include <map>

#include "config/config.h"
#include "io/checkpoint.h"
#include "io/torch_archive.h"
#include "models/registry.h"
#include "util/errors.h"

namespace qrobust::io {
namespace {

// The state dict's tensors; a "module." prefix (nn.DataParallel) is dropped.
std::map<std::string, io::TensorRef> state_dict_tensors(const io::TorchArchive& archive) {
  std::map<std::string, io::TensorRef> tensors;
  for (auto& [name, tensor] : io::tensor_dict(archive.root(), archive.path(), "the state dict"))
    tensors[name.rfind("module.", 0) == 0 ? name.substr(7) : name] = tensor;
  return tensors;
}

}  // namespace

ImportedWeights import_torchvision(const TorchvisionImport& request) {
  if (request.model != "resnet18" && request.model != "resnet34" && request.model != "resnet50")
    throw UsageError("import-torchvision: --model must be resnet18, resnet34 or resnet50, got \"" + request.model + "\"");
  if (request.image_size < 32) throw UsageError("import-torchvision: --image-size must be at least 32");
  if (!std::filesystem::is_regular_file(request.state_dict)) throw UsageError(request.state_dict + ": state dict not found");
  io::TorchArchive archive(request.state_dict);
  const auto state = state_dict_tensors(archive);
  const auto stem = state.find("conv1.weight"), fc = state.find("fc.weight");
  if (stem == state.end() || fc == state.end() || stem->second.sizes.size() != 4 || fc->second.sizes.size() != 2)
    throw UsageError(request.state_dict + ": not a torchvision ResNet (no conv1.weight / fc.weight)");

  ImportedWeights imported;
  imported.width = stem->second.sizes[0];
  imported.num_classes = fc->second.sizes[0];
  if (imported.width < 1 || imported.width > 4096 || imported.num_classes < 1 || imported.num_classes > 1000000)
    throw UsageError(request.state_dict + ": conv1.weight and fc.weight give width " + std::to_string(imported.width) +
                     " and " + std::to_string(imported.num_classes) + " classes, outside 1..4096 and 1..1000000");
  config::ExperimentConfig config;
  config.name = std::filesystem::path(request.out).stem().string();
  config.model.name(request.model).width(imported.width == 64 ? 0 : imported.width);
  config.data.dataset = config::Dataset::kImageFolder;
  config.data.root = config::default_data_root(config::Dataset::kImageFolder);
  config.data.image_size = request.image_size;
  config.data.resize = request.image_size * 256 / 224;
  auto model = models::make_model(request.model, {3, request.image_size, request.image_size, imported.num_classes},
                                  config.model.width());

  auto named = model->state();
  io::check_tensors(request.state_dict, named, state,
                    request.model + " (width " + std::to_string(imported.width) + ", " +
                        std::to_string(imported.num_classes) + " classes)");
  {
    torch::NoGradGuard no_grad;
    for (auto& item : named) item.value().copy_(archive.load(state.at(item.key())));
  }
  imported.tensors = static_cast<int64_t>(named.size());
  save_checkpoint(request.out, *model, nullptr, 0, config::to_yaml(config));
  return imported;
}

}  // namespace qrobust::io
