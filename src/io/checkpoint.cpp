#include "io/checkpoint.h"

#include <torch/csrc/jit/serialization/pickle.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/torch_archive.h"
#include "util/atomic_file.h"
#include "util/errors.h"

namespace qrobust::io {
namespace {

constexpr const char* kFormat = "qrobust-checkpoint-1";

// The optimizer keys its per-parameter state by the parameter's TensorImpl address, as a
// string in LibTorch 1.x and as a void* in 2.x; this builds whichever key type is in use.
template <class StateMap>
typename StateMap::key_type state_key(const StateMap&, const torch::Tensor& parameter) {
  using Key = typename StateMap::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;
    key << parameter.unsafeGetTensorImpl();
    return key.str();
  } else {
    return static_cast<Key>(parameter.unsafeGetTensorImpl());
  }
}

c10::Dict<std::string, torch::Tensor> model_state(const models::ClassifierImpl& model) {
  c10::Dict<std::string, torch::Tensor> state;
  for (const auto& item : model.state()) state.insert(item.key(), item.value().detach().cpu());
  return state;
}

// Refuses a file whose top-level dict does not carry qrobust's format tag.
void require_format_tag(const io::TorchArchive& archive) {
  const io::Value& root = archive.root();
  const io::Value* format = root.is(io::Value::Kind::kDict) ? root.find("format") : nullptr;
  if (format == nullptr || !format->is(io::Value::Kind::kString) || format->text() != kFormat)
    throw RuntimeFailure(archive.path() + ": not a qrobust checkpoint (no \"" + std::string(kFormat) + "\" format tag)");
}

// Field `key` of the checkpoint, of the kind the loader needs.
const io::Value& field(const io::TorchArchive& archive, const std::string& key, io::Value::Kind kind) {
  const io::Value* value = archive.root().find(key);
  if (value == nullptr) throw RuntimeFailure(archive.path() + ": checkpoint field \"" + key + "\" is missing");
  if (!value->is(kind))
    throw RuntimeFailure(archive.path() + ": checkpoint field \"" + key + "\" is " + value->description() +
                         ", expected " + io::describe(kind));
  return *value;
}

CheckpointInfo info_from(const io::TorchArchive& archive) {
  using K = io::Value::Kind;
  require_format_tag(archive);
  CheckpointInfo info;
  info.architecture = field(archive, "architecture", K::kString).text();
  info.num_classes = field(archive, "num_classes", K::kInt).integer();
  for (const io::Value* d : field(archive, "input_shape", K::kList).items()) {
    if (!d->is(K::kInt)) throw RuntimeFailure(archive.path() + ": checkpoint field \"input_shape\" holds " + d->description());
    info.input_shape.push_back(d->integer());
  }
  info.epoch = field(archive, "epoch", K::kInt).integer();
  if (info.epoch < 0) throw RuntimeFailure(archive.path() + ": checkpoint field \"epoch\" is negative");
  info.config_yaml = field(archive, "config", K::kString).text();
  return info;
}

io::TorchArchive open_checkpoint(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw UsageError(path + ": checkpoint not found");
  return io::TorchArchive(path);
}

}  // namespace

void save_checkpoint(const std::string& path, const models::ClassifierImpl& model, const torch::optim::SGD* optimizer,
                     int64_t epoch, const std::string& config_yaml) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  const auto& input = model.input_spec();
  dict.insert("format", std::string(kFormat));
  dict.insert("architecture", model.architecture());
  dict.insert("num_classes", input.num_classes);
  dict.insert("input_shape", std::vector<int64_t>{input.channels, input.height, input.width});
  dict.insert("epoch", epoch);
  dict.insert("config", config_yaml);
  dict.insert("model", model_state(model));
  if (optimizer != nullptr) {
    // Momentum buffers in parameter order; an empty tensor where SGD has no state yet.
    c10::List<torch::Tensor> momentum;
    const auto& state = optimizer->state();
    for (const auto& parameter : optimizer->param_groups().at(0).params()) {
      auto found = state.find(state_key(state, parameter));
      const auto* sgd_state = found == state.end() ? nullptr : static_cast<const torch::optim::SGDParamState*>(found->second.get());
      momentum.push_back(sgd_state && sgd_state->momentum_buffer().defined() ? sgd_state->momentum_buffer().detach().cpu()
                                                                            : torch::Tensor(torch::empty({0})));
    }
    dict.insert("momentum", momentum);
  }
  const auto bytes = torch::pickle_save(dict);
  util::write_file_atomically(path, std::string(bytes.begin(), bytes.end()));
}

CheckpointInfo read_checkpoint_info(const std::string& path) { return info_from(open_checkpoint(path)); }

CheckpointInfo load_checkpoint(const std::string& path, models::ClassifierImpl& model, torch::optim::SGD* optimizer) {
  auto archive = open_checkpoint(path);
  const CheckpointInfo info = info_from(archive);
  const auto& input = model.input_spec();
  const std::vector<int64_t> expected_shape{input.channels, input.height, input.width};
  if (info.architecture != model.architecture() || info.num_classes != input.num_classes ||
      info.input_shape != expected_shape)
    throw UsageError(path + ": checkpoint holds " + info.architecture + " (" + std::to_string(info.num_classes) +
                     " classes, input " + io::shape_text(info.input_shape) + ") but the config builds " +
                     model.architecture() + " (" + std::to_string(input.num_classes) + " classes, input " +
                     io::shape_text(expected_shape) + ")");
  // Everything is checked before anything is loaded, so a bad file changes nothing.
  const auto saved = io::tensor_dict(field(archive, "model", io::Value::Kind::kDict), path, "checkpoint field \"model\"");
  auto named = model.state();
  io::check_tensors(path, named, saved, "the model");
  std::vector<const io::TensorRef*> momentum;
  std::vector<torch::Tensor> params;
  if (optimizer != nullptr && archive.root().find("momentum") != nullptr) {
    params = optimizer->param_groups().at(0).params();
    const auto& buffers = field(archive, "momentum", io::Value::Kind::kList).items();
    if (buffers.size() != params.size())
      throw UsageError(path + ": checkpoint holds " + std::to_string(buffers.size()) + " momentum buffers, the optimizer has " +
                       std::to_string(params.size()) + " parameters");
    for (size_t i = 0; i < params.size(); ++i) {
      if (!buffers[i]->is(io::Value::Kind::kTensor))
        throw RuntimeFailure(path + ": momentum buffer " + std::to_string(i) + " is " + buffers[i]->description());
      const auto& buffer = buffers[i]->tensor();
      const bool empty = buffer.sizes == std::vector<int64_t>{0};  // SGD had no state for it yet
      if (!empty && (buffer.sizes != params[i].sizes() || !c10::isFloatingType(buffer.dtype)))
        throw UsageError(path + ": momentum buffer " + std::to_string(i) + " is " + io::shape_text(buffer.sizes) + " " +
                         c10::toString(buffer.dtype) + ", its parameter " + io::shape_text(params[i].sizes()) + " " +
                         c10::toString(params[i].scalar_type()));
      momentum.push_back(empty ? nullptr : &buffer);
    }
  }
  std::vector<torch::Tensor> weights, buffers;
  for (const auto& item : named) weights.push_back(archive.load(saved.at(item.key())));
  for (const auto* buffer : momentum) buffers.push_back(buffer ? archive.load(*buffer) : torch::Tensor());
  {
    torch::NoGradGuard no_grad;
    size_t i = 0;
    for (auto& item : named) item.value().copy_(weights[i++]);
  }
  for (size_t i = 0; i < buffers.size(); ++i) {
    if (!buffers[i].defined()) continue;
    auto& state = optimizer->state();
    auto param_state = std::make_unique<torch::optim::SGDParamState>();
    param_state->momentum_buffer(buffers[i].to(params[i].device(), params[i].scalar_type()));
    state[state_key(state, params[i])] = std::move(param_state);
  }
  return info;
}

}  // namespace qrobust::io
