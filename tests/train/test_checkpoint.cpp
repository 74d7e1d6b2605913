#include <catch2/catch.hpp>

#include "models/registry.h"
#include "test_support.h"
#include "train/checkpoint.h"
#include "train/schedule.h"
#include "util/atomic_file.h"

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
  train::save_checkpoint(dir.file("c.pt"), *model, &optimizer, 3, "name: x\n");

  torch::manual_seed(2);  // a differently initialized copy
  auto restored = models::make_model("resnet8", kInput, 4);
  auto restored_optimizer = train::make_optimizer(t, restored->parameters());
  REQUIRE_FALSE(same_state(*model, *restored));
  const auto info = train::load_checkpoint(dir.file("c.pt"), *restored, &restored_optimizer);
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
  train::save_checkpoint(dir.file("c.pt"), *model, nullptr, 1, "");

  auto other = models::make_model("resnet14", kInput, 4);
  CHECK_THROWS_WITH(train::load_checkpoint(dir.file("c.pt"), *other, nullptr),
                    Catch::Contains("holds resnet8") && Catch::Contains("builds resnet14"));
  auto more_classes = models::make_model("resnet8", {3, 32, 32, 100}, 4);
  CHECK_THROWS_WITH(train::load_checkpoint(dir.file("c.pt"), *more_classes, nullptr), Catch::Contains("10 classes"));
  auto wider = models::make_model("resnet8", kInput, 8);
  const auto before = wider->named_parameters()["conv1.weight"].clone();
  CHECK_THROWS_WITH(train::load_checkpoint(dir.file("c.pt"), *wider, nullptr),
                    Catch::Contains("\"conv1.weight\" is 4x3x3x3 in the checkpoint but 8x3x3x3"));
  CHECK(torch::equal(before, wider->named_parameters()["conv1.weight"]));
}

TEST_CASE("unreadable checkpoints are errors naming the file") {
  testing::TempDir dir;
  auto model = models::make_model("resnet8", kInput, 4);
  CHECK_THROWS_WITH(train::load_checkpoint(dir.file("missing.pt"), *model, nullptr), Catch::Contains("missing.pt"));
  testing::write_bytes(dir.file("junk.pt"), "not a checkpoint");
  CHECK_THROWS_WITH(train::load_checkpoint(dir.file("junk.pt"), *model, nullptr),
                    Catch::StartsWith(dir.file("junk.pt")) && Catch::Contains("not a readable checkpoint"));
  train::save_checkpoint(dir.file("good.pt"), *model, nullptr, 1, "");
  const auto bytes = util::read_file(dir.file("good.pt"));
  testing::write_bytes(dir.file("cut.pt"), bytes.substr(0, bytes.size() / 2));
  CHECK_THROWS_WITH(train::load_checkpoint(dir.file("cut.pt"), *model, nullptr), Catch::StartsWith(dir.file("cut.pt")));
}
