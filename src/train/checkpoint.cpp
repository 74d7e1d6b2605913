#include "train/checkpoint.h"

#include <torch/csrc/jit/serialization/pickle.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/atomic_file.h"
#include "util/errors.h"

namespace qrobust::train {
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

c10::impl::GenericDict read_dict(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw UsageError(path + ": checkpoint not found");
  const std::string bytes = util::read_file(path);
  c10::IValue value;
  try {
    value = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  } catch (const c10::Error& e) {
    throw RuntimeFailure(path + ": not a readable checkpoint (" + first_line(e.what()) + ")");
  }
  if (!value.isGenericDict()) throw RuntimeFailure(path + ": not a qrobust checkpoint");
  auto dict = value.toGenericDict();
  if (!dict.contains("format") || dict.at("format").toStringRef() != kFormat)
    throw RuntimeFailure(path + ": not a qrobust checkpoint (no \"" + std::string(kFormat) + "\" format tag)");
  return dict;
}

CheckpointInfo info_from(const c10::impl::GenericDict& dict) {
  CheckpointInfo info;
  info.architecture = dict.at("architecture").toStringRef();
  info.num_classes = dict.at("num_classes").toInt();
  info.input_shape = dict.at("input_shape").toIntVector();
  info.epoch = dict.at("epoch").toInt();
  info.config_yaml = dict.at("config").toStringRef();
  return info;
}

}  // namespace

std::string shape_text(c10::IntArrayRef shape) {
  std::string text;
  for (auto d : shape) text += (text.empty() ? "" : "x") + std::to_string(d);
  return text;
}

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

CheckpointInfo read_checkpoint_info(const std::string& path) { return info_from(read_dict(path)); }

CheckpointInfo load_checkpoint(const std::string& path, models::ClassifierImpl& model, torch::optim::SGD* optimizer) {
  const auto dict = read_dict(path);
  const CheckpointInfo info = info_from(dict);
  const auto& input = model.input_spec();
  const std::vector<int64_t> expected_shape{input.channels, input.height, input.width};
  if (info.architecture != model.architecture() || info.num_classes != input.num_classes ||
      info.input_shape != expected_shape)
    throw UsageError(path + ": checkpoint holds " + info.architecture + " (" + std::to_string(info.num_classes) +
                     " classes, input " + shape_text(info.input_shape) + ") but the config builds " +
                     model.architecture() + " (" + std::to_string(input.num_classes) + " classes, input " +
                     shape_text(expected_shape) + ")");
  const auto saved = c10::impl::toTypedDict<std::string, torch::Tensor>(dict.at("model").toGenericDict());
  auto named = model.state();
  if (static_cast<size_t>(saved.size()) != named.size())
    throw UsageError(path + ": checkpoint holds " + std::to_string(saved.size()) + " tensors, the model has " +
                     std::to_string(named.size()) + " (a different width or variant?)");
  for (const auto& item : named) {
    auto found = saved.find(item.key());
    if (found == saved.end()) throw UsageError(path + ": checkpoint has no tensor \"" + item.key() + "\"");
    if (found->value().sizes() != item.value().sizes())
      throw UsageError(path + ": tensor \"" + item.key() + "\" is " + shape_text(found->value().sizes()) +
                       " in the checkpoint but " + shape_text(item.value().sizes()) + " in the model");
  }
  {
    torch::NoGradGuard no_grad;
    for (auto& item : named) item.value().copy_(saved.at(item.key()));
  }
  if (optimizer != nullptr && dict.contains("momentum")) {
    const auto momentum = dict.at("momentum").toTensorList();
    auto& params = optimizer->param_groups().at(0).params();
    if (momentum.size() != params.size()) throw UsageError(path + ": optimizer state does not match the model");
    auto& state = optimizer->state();
    for (size_t i = 0; i < params.size(); ++i) {
      const torch::Tensor buffer = momentum.get(i);
      if (buffer.numel() == 0) continue;
      auto param_state = std::make_unique<torch::optim::SGDParamState>();
      param_state->momentum_buffer(buffer.to(params[i].device()));
      state[state_key(state, params[i])] = std::move(param_state);
    }
  }
  return info;
}

}  // namespace qrobust::train
