#include <catch2/catch.hpp>
#include <torch/csrc/jit/serialization/pickle.h>

#include <cstdlib>
#include <random>

#include "io/checkpoint.h"
#include "models/registry.h"
#include "test_support.h"
#include "train/schedule.h"
#include "util/atomic_file.h"
#include "util/errors.h"

using namespace qrobust;

namespace {
const models::InputSpec kInput{3, 32, 32, 10};

// One SGD step on a fixed random batch.
void sgd_step(models::ClassifierImpl& model, torch::optim::SGD& optimizer) {
  torch::manual_seed(123);
  const auto images = torch::randn({4, 3, 32, 32});
  const auto targets = torch::randint(0, 10, {4}, torch::kLong);
  optimizer.zero_grad();
  torch::nn::functional::cross_entropy(model.forward(images), targets).backward();
  optimizer.step();
}

bool same_state(const models::ClassifierImpl& a, const models::ClassifierImpl& b) {
  auto pb = b.named_parameters();
  for (const auto& item : a.named_parameters())
    if (!torch::equal(item.value(), pb[item.key()])) return false;
  auto bb = b.named_buffers();
  for (const auto& item : a.named_buffers())
    if (!torch::equal(item.value(), bb[item.key()])) return false;
  return true;
}
}  // namespace

TEST_CASE("a checkpoint restores weights, batch-norm statistics and momentum exactly") {
  testing::TempDir dir;
  config::TrainConfig t;
  torch::manual_seed(1);
  auto model = models::make_model("resnet8", kInput, 4);
  auto optimizer = train::make_optimizer(t, model->parameters());
  sgd_step(*model, optimizer);
  io::save_checkpoint(dir.file("c.pt"), *model, &optimizer, 3, "name: x\n");

  torch::manual_seed(2);  // a differently initialized copy
  auto restored = models::make_model("resnet8", kInput, 4);
  auto restored_optimizer = train::make_optimizer(t, restored->parameters());
  REQUIRE_FALSE(same_state(*model, *restored));
  const auto info = io::load_checkpoint(dir.file("c.pt"), *restored, &restored_optimizer);
  CHECK(info.epoch == 3);
  CHECK(info.config_yaml == "name: x\n");
  CHECK(info.architecture == "resnet8");
  CHECK(same_state(*model, *restored));
  // Momentum came back too: the next step is identical.
  sgd_step(*model, optimizer);
  sgd_step(*restored, restored_optimizer);
  CHECK(same_state(*model, *restored));
}

TEST_CASE("a checkpoint from another model is a clear error and changes nothing") {
  testing::TempDir dir;
  auto model = models::make_model("resnet8", kInput, 4);
  io::save_checkpoint(dir.file("c.pt"), *model, nullptr, 1, "");

  auto other = models::make_model("resnet14", kInput, 4);
  CHECK_THROWS_WITH(io::load_checkpoint(dir.file("c.pt"), *other, nullptr),
                    Catch::Contains("holds resnet8") && Catch::Contains("builds resnet14"));
  auto more_classes = models::make_model("resnet8", {3, 32, 32, 100}, 4);
  CHECK_THROWS_WITH(io::load_checkpoint(dir.file("c.pt"), *more_classes, nullptr), Catch::Contains("10 classes"));
  auto wider = models::make_model("resnet8", kInput, 8);
  const auto before = wider->named_parameters()["conv1.weight"].clone();
  CHECK_THROWS_WITH(io::load_checkpoint(dir.file("c.pt"), *wider, nullptr),
                    Catch::Contains("tensor \"conv1.weight\" is 4x3x3x3, the model has 8x3x3x3"));
  CHECK(torch::equal(before, wider->named_parameters()["conv1.weight"]));
}

TEST_CASE("unreadable checkpoints are errors naming the file") {
  testing::TempDir dir;
  auto model = models::make_model("resnet8", kInput, 4);
  CHECK_THROWS_WITH(io::load_checkpoint(dir.file("missing.pt"), *model, nullptr), Catch::Contains("missing.pt"));
  testing::write_bytes(dir.file("junk.pt"), "not a checkpoint");
  CHECK_THROWS_WITH(io::load_checkpoint(dir.file("junk.pt"), *model, nullptr),
                    Catch::StartsWith(dir.file("junk.pt")) && Catch::Contains("not a zip archive"));
  io::save_checkpoint(dir.file("good.pt"), *model, nullptr, 1, "");
  const auto bytes = util::read_file(dir.file("good.pt"));
  testing::write_bytes(dir.file("cut.pt"), bytes.substr(0, bytes.size() / 2));
  CHECK_THROWS_WITH(io::load_checkpoint(dir.file("cut.pt"), *model, nullptr), Catch::StartsWith(dir.file("cut.pt")));
}

namespace {

// A checkpoint's dict as save_checkpoint writes it, for tests to change one field of.
c10::impl::GenericDict checkpoint_dict(const std::string& path) {
  const auto bytes = util::read_file(path);
  return torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict();  // a file this test wrote
}

void write_dict(const std::string& path, const c10::impl::GenericDict& dict) {
  const auto bytes = torch::pickle_save(dict);
  util::write_file_atomically(path, std::string(bytes.begin(), bytes.end()));
}

// A ResNet-8 after one SGD step (so it has momentum), saved at epoch 3 to `path`.
struct SavedCheckpoint {
  testing::TempDir dir;
  config::TrainConfig train_config;
  models::Classifier model = models::make_model("resnet8", kInput, 4);
  torch::optim::SGD optimizer = train::make_optimizer(train_config, model->parameters());
  std::string path = dir.file("c.pt");
  SavedCheckpoint() {
    sgd_step(*model, optimizer);
    io::save_checkpoint(path, *model, &optimizer, 3, "name: x\n");
  }
};

}  // namespace

TEST_CASE("checkpoint fields of the wrong type, and momentum that does not fit, are errors that change nothing", "[corpus]") {
  SavedCheckpoint saved;
  const auto& dir = saved.dir;
  testing::save_corpus_sample("checkpoint", util::read_file(saved.path));

  auto fresh = models::make_model("resnet8", kInput, 4);
  auto fresh_optimizer = train::make_optimizer(saved.train_config, fresh->parameters());
  const auto before = fresh->named_parameters()["conv1.weight"].clone();
  auto load = [&](const std::string& path) { return io::load_checkpoint(path, *fresh, &fresh_optimizer); };

  auto dict = checkpoint_dict(dir.file("c.pt"));
  dict.insert_or_assign("epoch", std::string("three"));
  write_dict(dir.file("typed.pt"), dict);
  CHECK_THROWS_WITH(load(dir.file("typed.pt")), Catch::Contains("checkpoint field \"epoch\" is a string, expected an integer"));

  dict = checkpoint_dict(dir.file("c.pt"));
  REQUIRE(dict.erase("architecture") == 1);
  write_dict(dir.file("missing.pt"), dict);
  CHECK_THROWS_WITH(load(dir.file("missing.pt")), Catch::Contains("checkpoint field \"architecture\" is missing"));

  dict = checkpoint_dict(dir.file("c.pt"));
  auto momentum = dict.at("momentum").toTensorList();
  momentum.set(0, torch::zeros({2, 2}));
  dict.insert_or_assign("momentum", momentum);
  write_dict(dir.file("momentum.pt"), dict);
  CHECK_THROWS_WITH(load(dir.file("momentum.pt")), Catch::Contains("momentum buffer 0 is 2x2 Float, its parameter 4x3x3x3"));
  momentum.pop_back();
  dict.insert_or_assign("momentum", momentum);
  write_dict(dir.file("short.pt"), dict);
  CHECK_THROWS_WITH(load(dir.file("short.pt")), Catch::Contains("momentum buffers, the optimizer has"));

  dict = checkpoint_dict(dir.file("c.pt"));
  auto weights = c10::impl::toTypedDict<std::string, torch::Tensor>(dict.at("model").toGenericDict());
  weights.insert_or_assign("bn1.running_mean", torch::zeros({4}, torch::kLong));
  dict.insert_or_assign("model", weights);
  write_dict(dir.file("dtype.pt"), dict);
  CHECK_THROWS_WITH(load(dir.file("dtype.pt")), Catch::Contains("\"bn1.running_mean\" holds Long"));

  CHECK(torch::equal(before, fresh->named_parameters()["conv1.weight"]));
  CHECK(fresh_optimizer.state().empty());
}

TEST_CASE("1,000 seeded mutants of a real checkpoint load or fail cleanly, and never load changed weights") {
  SavedCheckpoint saved;
  const auto& dir = saved.dir;
  const auto& model = saved.model;
  const auto& t = saved.train_config;
  const std::string original = util::read_file(saved.path);

  std::mt19937_64 random(2026);
  int loaded = 0, refused = 0;
  for (int i = 0; i < 1000; ++i) {
    std::string mutant = original;
    const int kind = static_cast<int>(random() % 4);
    const size_t at = random() % mutant.size();
    if (kind == 0) mutant[at] = static_cast<char>(mutant[at] ^ (1u << (random() % 8)));  // one bit
    if (kind == 1) mutant[at] = static_cast<char>(random());                              // one byte
    if (kind == 2) mutant.resize(at);                                                     // truncated
    if (kind == 3) mutant.insert(at, std::string(1 + random() % 16, static_cast<char>(random())));  // bytes inserted
    util::write_file_atomically(dir.file("m.pt"), mutant);
    auto restored = models::make_model("resnet8", kInput, 4);
    auto restored_optimizer = train::make_optimizer(t, restored->parameters());
    try {
      io::load_checkpoint(dir.file("m.pt"), *restored, &restored_optimizer);
      ++loaded;  // only bytes no content depends on changed (timestamps, padding): the weights are the saved ones
      INFO("mutant " << i << " (kind " << kind << " at byte " << at << ") loaded");
      CHECK(same_state(*model, *restored));
    } catch (const UsageError&) {
      ++refused;
    } catch (const RuntimeFailure& e) {
      CHECK_THAT(e.what(), Catch::StartsWith(dir.file("m.pt")));
      ++refused;
    }
  }
  CHECK(refused > 500);
  CHECK(loaded + refused == 1000);
}

TEST_CASE("a checkpoint re-saved by Python's torch.save loads, to the same weights and momentum", "[python]") {
  if (std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") != 0) {
    WARN("no /usr/bin/python3 with torch (Debian: python3-torch): not checked");
    return;
  }
  SavedCheckpoint saved;
  const auto& dir = saved.dir;
  auto& model = saved.model;
  auto& optimizer = saved.optimizer;
  const auto& t = saved.train_config;
  const std::string command = "/usr/bin/python3 -c \"import torch; torch.save(torch.load('" + dir.file("c.pt") +
                              "'), '" + dir.file("python.pt") + "')\"";
  REQUIRE(std::system(command.c_str()) == 0);

  auto restored = models::make_model("resnet8", kInput, 4);
  auto restored_optimizer = train::make_optimizer(t, restored->parameters());
  const auto info = io::load_checkpoint(dir.file("python.pt"), *restored, &restored_optimizer);
  CHECK(info.epoch == 3);
  CHECK(info.config_yaml == "name: x\n");
  CHECK(same_state(*model, *restored));
  sgd_step(*model, optimizer);
  sgd_step(*restored, restored_optimizer);
  CHECK(same_state(*model, *restored));
}
