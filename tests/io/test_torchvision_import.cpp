#include <catch2/catch.hpp>
#include <torch/csrc/jit/serialization/pickle.h>

#include <cstdlib>
#include <filesystem>

#include "io/checkpoint.h"
#include "io/torch_archive.h"
#include "io/torchvision_import.h"
#include "models/registry.h"
#include "test_support.h"
#include "util/atomic_file.h"
#include "util/errors.h"

using namespace qrobust;

namespace {

const std::string kFixtures = std::string(QROBUST_SOURCE_DIR) + "/tests/fixtures/";

double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).norm() / b.norm()).item<double>();
}

// A state dict written by LibTorch (torch::pickle_save of a dict of tensors).
void write_state_dict(const std::string& path, const std::map<std::string, torch::Tensor>& tensors) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, tensor] : tensors) dict.insert(name, tensor);
  const auto bytes = torch::pickle_save(dict);
  util::write_file_atomically(path, std::string(bytes.begin(), bytes.end()));
}

// Every tensor of a state dict file, loaded.
std::map<std::string, torch::Tensor> read_state_dict(const std::string& path) {
  io::TorchArchive archive(path);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, tensor] : io::tensor_dict(archive.root(), path, "the state dict"))
    tensors[name] = archive.load(tensor);
  return tensors;
}

}  // namespace

// The fixture is torchvision's ResNet-18 narrowed to width 4 with random weights and batch-norm
// statistics, saved by Python with its logits on a fixed input (tests/fixtures/make_torchvision_fixture.py).
TEST_CASE("import-torchvision: a torchvision state dict computes in qrobust what it computed in Python") {
  const auto state = read_state_dict(kFixtures + "resnet18_w4.pth");
  CHECK(state.size() == 122);
  CHECK(state.at("layer1.0.bn1.num_batches_tracked").item<int64_t>() == 7);
  const auto io = read_state_dict(kFixtures + "resnet18_w4_io.pt");

  testing::TempDir dir;
  const auto imported = io::import_torchvision({"resnet18", kFixtures + "resnet18_w4.pth", dir.file("r18.pt"), 224});
  CHECK(imported.width == 4);
  CHECK(imported.num_classes == 10);
  CHECK(imported.tensors == 122);
  const auto info = io::read_checkpoint_info(dir.file("r18.pt"));
  CHECK(info.architecture == "resnet18");
  CHECK(info.input_shape == std::vector<int64_t>{3, 224, 224});
  CHECK(info.config_yaml.find("dataset: imagefolder") != std::string::npos);

  auto model = models::make_model("resnet18", {3, 224, 224, 10}, 4);
  io::load_checkpoint(dir.file("r18.pt"), *model, nullptr);
  model->eval();
  torch::NoGradGuard no_grad;
  const auto logits = model->forward(io.at("input"));
  CHECK(relative_error(logits, io.at("logits")) < 1e-5);
}

TEST_CASE("import-torchvision names the tensor that does not fit, and reads only state dicts") {
  testing::TempDir dir;
  const std::string pth = kFixtures + "resnet18_w4.pth";
  CHECK_THROWS_WITH(io::import_torchvision({"resnet34", pth, dir.file("a.pt"), 224}),
                    Catch::Contains("no tensor \"layer1.2.conv1.weight\", which resnet34 (width 4, 10 classes) has"));
  CHECK_THROWS_WITH(io::import_torchvision({"vgg16_bn", pth, dir.file("a.pt"), 224}), Catch::Contains("--model"));
  CHECK_THROWS_WITH(io::import_torchvision({"resnet18", dir.file("missing.pth"), dir.file("a.pt"), 224}),
                    Catch::Contains("not found"));

  auto state = read_state_dict(pth);
  state["extra.weight"] = torch::zeros({2});
  write_state_dict(dir.file("extra.pth"), state);
  CHECK_THROWS_WITH(io::import_torchvision({"resnet18", dir.file("extra.pth"), dir.file("a.pt"), 224}),
                    Catch::Contains("\"extra.weight\" has no place in resnet18"));
  state.erase("extra.weight");
  state["layer2.0.conv1.weight"] = torch::zeros({8, 4, 3, 1});
  write_state_dict(dir.file("shape.pth"), state);
  CHECK_THROWS_WITH(io::import_torchvision({"resnet18", dir.file("shape.pth"), dir.file("a.pt"), 224}),
                    Catch::Contains("\"layer2.0.conv1.weight\" is 8x4x3x1") && Catch::Contains("has 8x4x3x3"));
  CHECK(!std::filesystem::exists(dir.file("a.pt")));  // nothing written on failure

  testing::write_bytes(dir.file("text.pth"), "not an archive");
  CHECK_THROWS_WITH(read_state_dict(dir.file("text.pth")), Catch::Contains("not a zip archive"));
}

TEST_CASE("qrobust checkpoints load into torchvision's models in Python", "[python]") {
  if (std::system("/usr/bin/python3 -c 'import torch, torchvision' > /dev/null 2>&1") != 0) {
    WARN("no /usr/bin/python3 with torch and torchvision (Debian: python3-torchvision): not checked");
    return;
  }
  testing::TempDir dir;
  torch::manual_seed(4);
  auto model = models::make_model("resnet18", {3, 224, 224, 10});
  {
    torch::NoGradGuard no_grad;  // non-trivial batch-norm statistics
    for (auto& buffer : model->named_buffers())
      if (buffer.key().find("running_var") != std::string::npos) buffer.value().uniform_(0.5, 2.0);
  }
  model->eval();
  const auto input = torch::randn({2, 3, 64, 64});
  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = model->forward(input);
  }
  io::save_checkpoint(dir.file("checkpoint.pt"), *model, nullptr, 3, "name: test\n");
  write_state_dict(dir.file("io.pt"), {{"input", input}, {"logits", logits}});
  const std::string command = "/usr/bin/python3 " + std::string(QROBUST_SOURCE_DIR) +
                              "/tests/io/check_checkpoint_in_python.py " + dir.file("checkpoint.pt") + " " +
                              dir.file("io.pt");
  CHECK(std::system(command.c_str()) == 0);
}
