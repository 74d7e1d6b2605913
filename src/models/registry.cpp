#include "models/registry.h"

#include <regex>

#include "models/resnet.h"
#include "models/vgg.h"
#include "util/errors.h"

namespace qrobust::models {

namespace {
// Depth of a CIFAR ResNet name "resnet<6n+2>", or 0.
int64_t cifar_resnet_depth(const std::string& name) {
  // Up to ResNet-1202, the deepest of He et al. (2016); four digits cannot overflow stoll.
  static const std::regex pattern("resnet([0-9]{1,4})");
  std::smatch match;
  if (!std::regex_match(name, match, pattern)) return 0;
  const int64_t depth = std::stoll(match[1]);
  return (depth >= 8 && depth <= 1202 && (depth - 2) % 6 == 0 && depth != 50) ? depth : 0;  // resnet50 is ImageNet's
}

std::vector<int64_t> scaled(std::vector<int64_t> channels, int64_t base, int64_t width) {
  if (width == 0) return channels;
  for (auto& c : channels) c = c * width / base;
  return channels;
}

// Seeds the global CPU generator for its lifetime, then puts back the state it had.
class SeededGlobalGenerator {
 public:
  explicit SeededGlobalGenerator(uint64_t seed) : generator_(at::detail::getDefaultCPUGenerator()) {
    saved_ = generator_.get_state();
    generator_.set_current_seed(seed);
  }
  ~SeededGlobalGenerator() { generator_.set_state(saved_); }
  SeededGlobalGenerator(const SeededGlobalGenerator&) = delete;
  SeededGlobalGenerator& operator=(const SeededGlobalGenerator&) = delete;

 private:
  at::Generator generator_;
  at::Tensor saved_;
};

const std::vector<int64_t> kVggLike = {128, 128, 0, 256, 256, 0, 512, 512, 0};
const std::vector<int64_t> kVgg11 = {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0};
const std::vector<int64_t> kVgg16 = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};
}  // namespace

bool is_known_model(const std::string& name) {
  return cifar_resnet_depth(name) > 0 || name == "resnet18" || name == "resnet34" || name == "resnet50" ||
         name == "resnet18_cifar" || name == "vgg_like" || name == "vgg11_bn" ||
         name == "vgg16_bn";
}

std::string known_models_text() {
  return "resnet<6n+2> (resnet8, resnet20, resnet32, resnet56, ...), resnet18_cifar, resnet18, resnet34, resnet50, "
         "vgg_like, vgg11_bn, vgg16_bn";
}

Classifier make_model(const std::string& name, const InputSpec& input, int64_t width) {
  if (width < 0) throw UsageError("model.width: must be positive, got " + std::to_string(width));
  if (const int64_t depth = cifar_resnet_depth(name)) {
    const int64_t n = (depth - 2) / 6;
    const int64_t base = width > 0 ? width : 16;
    if (base % 2 != 0) throw UsageError("model.width: CIFAR ResNets need an even width, got " + std::to_string(base));
    return std::make_shared<ResNetImpl>(
        name, ResNetOptions({n, n, n}, {base, 2 * base, 4 * base}).shortcut(Shortcut::kZeroPad).input(input));
  }
  if (name == "resnet18_cifar") {
    const int64_t base = width > 0 ? width : 64;
    return std::make_shared<ResNetImpl>(
        name, ResNetOptions({2, 2, 2, 2}, {base, 2 * base, 4 * base, 8 * base})
                  .shortcut(Shortcut::kProjection)
                  .input(input));
  }
  if (name == "resnet18" || name == "resnet34" || name == "resnet50") {
    const std::vector<int64_t> blocks = name == "resnet18" ? std::vector<int64_t>{2, 2, 2, 2} : std::vector<int64_t>{3, 4, 6, 3};
    const int64_t base = width > 0 ? width : 64;
    return std::make_shared<ResNetImpl>(name, ResNetOptions(blocks, {base, 2 * base, 4 * base, 8 * base})
                                                  .shortcut(Shortcut::kProjection)
                                                  .stem(Stem::kImageNet)
                                                  .bottleneck(name == "resnet50")
                                                  .input(input));
  }
  if (name == "vgg_like")
    return std::make_shared<VggImpl>(name, VggOptions(scaled(kVggLike, 128, width), scaled({1024}, 128, width)).input(input));
  if (name == "vgg11_bn") return std::make_shared<VggImpl>(name, VggOptions(scaled(kVgg11, 64, width), {}).input(input));
  if (name == "vgg16_bn") return std::make_shared<VggImpl>(name, VggOptions(scaled(kVgg16, 64, width), {}).input(input));
  throw UsageError("model.name: unknown model \"" + name + "\" (known: " + known_models_text() + ")");
}

Classifier build_model(const ModelOptions& options, const InputSpec& input, uint64_t seed, torch::Device device) {
  Classifier model;
  {
    SeededGlobalGenerator seeded(seed);  // module constructors draw their weights from it
    model = make_model(options.name(), input, options.width());
  }
  model->to(device);
  return model;
}

}  // namespace qrobust::models
