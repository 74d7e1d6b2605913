#include <catch2/catch.hpp>

#include "data/datasets.h"
#include "io/checkpoint.h"
#include "models/registry.h"
#include "regularize/regularizer.h"
#include "test_support.h"
#include "train/trainer.h"

using namespace qrobust;

namespace {
// A small smooth network (tanh), so the penalties are differentiable everywhere.
class TinyNetImpl : public models::ClassifierImpl {
 public:
  TinyNetImpl() : ClassifierImpl("tiny", {1, 4, 4, 3}) {
    input_ = register_module("input_point", models::QuantPoint());
    fc1_ = register_module("fc1", torch::nn::Linear(16, 6));
    act_ = register_module("act1", models::QuantPoint());
    fc2_ = register_module("fc2", torch::nn::Linear(6, 3));
    declare_point("input_point", input_);
    declare_layer("fc1", fc1_.ptr(), nullptr);
    declare_point("act1", act_);
    declare_layer("fc2", fc2_.ptr(), nullptr);
  }
  torch::Tensor forward(torch::Tensor x) override { return fc2_(act_(torch::tanh(fc1_(input_(x).flatten(1))))); }

 private:
  models::QuantPoint input_{nullptr}, act_{nullptr};
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};

regularize::RegularizerOptions penalty(const std::string& name, double lambda_w, double lambda_a, double lambda = 0,
                                       const std::string& method = "double_backprop") {
  return regularize::RegularizerOptions()
      .penalty(*util::value_of(name, regularize::kPenaltyNames))
      .lambda_w(lambda_w)
      .lambda_a(lambda_a)
      .lambda(lambda)
      .method(*util::value_of(method, regularize::kGradientMethodNames));
}

struct Objective {
  double value;                      // CE + penalty
  std::vector<torch::Tensor> grads;  // of every parameter
};

Objective run_step(regularize::Regularizer& r, models::ClassifierImpl& model, const torch::Tensor& x, const torch::Tensor& y) {
  for (auto& p : model.parameters())
    if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
  const auto result = r.step(model, x, y);
  Objective out{result.cross_entropy + result.penalty, {}};
  for (const auto& p : model.parameters()) out.grads.push_back(p.grad().clone());
  return out;
}

// Relative error between the step's gradient and a central finite difference of its value,
// over `coordinates` parameter entries (all if < 0).
double gradient_check(regularize::Regularizer& r, models::ClassifierImpl& model, const torch::Tensor& x,
                      const torch::Tensor& y, int64_t coordinates = -1) {
  const auto analytic = run_step(r, model, x, y);
  auto parameters = model.parameters();
  std::vector<double> exact, numeric;
  const double h = 1e-6;
  torch::manual_seed(5);
  for (size_t i = 0; i < parameters.size(); ++i) {
    auto flat = parameters[i].data().view(-1);
    const int64_t n = flat.numel();
    const int64_t take = coordinates < 0 ? n : std::min<int64_t>(n, coordinates);
    const auto picks = coordinates < 0 ? torch::arange(n) : torch::randperm(n).narrow(0, 0, take);
    for (int64_t k = 0; k < take; ++k) {
      const int64_t j = picks[k].item<int64_t>();
      const double original = flat[j].item<double>();
      flat[j] = original + h;
      const double plus = run_step(r, model, x, y).value;
      flat[j] = original - h;
      const double minus = run_step(r, model, x, y).value;
      flat[j] = original;
      numeric.push_back((plus - minus) / (2 * h));
      exact.push_back(analytic.grads[i].view(-1)[j].item<double>());
    }
  }
  const auto a = torch::tensor(exact, torch::kDouble), b = torch::tensor(numeric, torch::kDouble);
  return ((a - b).norm() / b.norm()).item<double>();
}
}  // namespace

TEST_CASE("each penalty's training gradient equals a central finite difference of its value (float64)") {
  torch::manual_seed(3);
  auto model = std::make_shared<TinyNetImpl>();
  model->to(torch::kDouble);
  const auto x = torch::randn({5, 1, 4, 4}, torch::kDouble);
  const auto y = torch::randint(0, 3, {5}, torch::kLong);
  for (const auto& [label, config] : {std::pair<std::string, regularize::RegularizerOptions>{"grad_l1", penalty("grad_l1", 0.3, 0.7)},
                                      {"grad_l1 weights only", penalty("grad_l1", 0.5, 0)},
                                      {"grad_l1 activations only", penalty("grad_l1", 0, 0.5)},
                                      {"grad_l2", penalty("grad_l2", 0.3, 0.7)},
                                      {"dq_lipschitz", penalty("dq_lipschitz", 0, 0, 0.2)},
                                      {"kurtosis", penalty("kurtosis", 0, 0, 0.2)}}) {
    INFO(label);
    auto regularizer = regularize::make_regularizer(config);
    CHECK(gradient_check(*regularizer, *model, x, y) < 1e-6);
  }
}

TEST_CASE("the gradient-norm penalty value equals the norms of a plain backward pass") {
  torch::manual_seed(4);
  auto model = models::make_model("resnet8", {3, 16, 16, 10}, 4);
  const auto x = torch::randn({6, 3, 16, 16});
  const auto y = torch::randint(0, 10, {6}, torch::kLong);
  model->eval();  // fixed batch-norm statistics: both passes see the same function

  // Independent: one ordinary backward, then sum the |gradients| by hand.
  std::vector<torch::Tensor> activations;
  torch::Tensor ce;
  {
    models::RecordScope record(model->quant_points());
    ce = torch::nn::functional::cross_entropy(model->forward(x), y);
    for (const auto& point : model->quant_points())
      if (point->recorded().requires_grad()) activations.push_back(point->recorded());
  }
  for (auto& a : activations) a.retain_grad();
  model->zero_grad();
  ce.backward();
  double l1_w = 0, l1_a = 0, l2_w = 0;
  for (const auto& layer : model->quant_layers()) {
    l1_w += layer.weight().grad().abs().sum().item<double>();
    l2_w += layer.weight().grad().norm().item<double>();
  }
  for (const auto& a : activations) l1_a += a.grad().abs().sum().item<double>();
  REQUIRE(activations.size() == model->quant_points().size() - 1);  // all but the input

  for (const auto& method : {"double_backprop", "finite_difference"}) {
    INFO(method);
    model->zero_grad();
    auto l1 = regularize::make_regularizer(penalty("grad_l1", 0.5, 2.0, 0, method));
    const auto result = l1->step(*model, x, y);
    CHECK(result.cross_entropy == Approx(ce.item<double>()));
    CHECK(result.penalty == Approx(0.5 * l1_w + 2.0 * l1_a).epsilon(1e-5));
    model->zero_grad();
    auto l2 = regularize::make_regularizer(penalty("grad_l2", 1.0, 0.0, 0, method));
    CHECK(l2->step(*model, x, y).penalty == Approx(l2_w).epsilon(1e-5));
  }
}

TEST_CASE("the finite-difference gradient approaches double backprop on a smooth network") {
  torch::manual_seed(6);
  auto model = std::make_shared<TinyNetImpl>();
  model->to(torch::kDouble);
  const auto x = torch::randn({8, 1, 4, 4}, torch::kDouble);
  const auto y = torch::randint(0, 3, {8}, torch::kLong);
  for (const auto& name : {"grad_l1", "grad_l2"}) {
    INFO(name);
    auto exact = regularize::make_regularizer(penalty(name, 0.4, 0.6));
    auto config = penalty(name, 0.4, 0.6, 0, "finite_difference");
    config.fd_epsilon(1e-7);
    auto approximate = regularize::make_regularizer(config);
    const auto a = run_step(*exact, *model, x, y), b = run_step(*approximate, *model, x, y);
    CHECK(a.value == Approx(b.value));
    for (size_t i = 0; i < a.grads.size(); ++i)
      CHECK(((a.grads[i] - b.grads[i]).norm() / a.grads[i].norm()).item<double>() < 1e-4);
  }
}

TEST_CASE("double backprop through batch norm in train mode matches finite differences") {
  torch::manual_seed(8);
  auto model = models::make_model("resnet8", {3, 8, 8, 10}, 2);
  model->to(torch::kDouble);
  model->train();
  // Momentum 0 keeps the running statistics out of it: each step sees the same function.
  for (auto& module : model->modules())
    if (auto* bn = module->as<torch::nn::BatchNorm2d>()) bn->options.momentum(0.0);
  const auto x = torch::randn({4, 3, 8, 8}, torch::kDouble);
  const auto y = torch::randint(0, 10, {4}, torch::kLong);
  auto regularizer = regularize::make_regularizer(penalty("grad_l1", 0.2, 0.5));
  CHECK(gradient_check(*regularizer, *model, x, y, /*coordinates=*/4) < 1e-5);
}

TEST_CASE("every penalty runs on every shipped model with batch norm in train mode") {
  const auto x = torch::randn({4, 3, 32, 32});
  const auto y = torch::randint(0, 10, {4}, torch::kLong);
  for (const auto& [name, width] : testing::shipped_models()) {
    for (const auto& config : {penalty("grad_l1", 0.1, 0.1), penalty("grad_l2", 0.1, 0.1),
                               penalty("grad_l1", 0.1, 0.1, 0, "finite_difference"), penalty("dq_lipschitz", 0, 0, 0.01),
                               penalty("kurtosis", 0, 0, 0.01)}) {
      INFO(name << " " << util::name_of(config.penalty(), regularize::kPenaltyNames) << " "
                << util::name_of(config.method(), regularize::kGradientMethodNames));
      torch::manual_seed(1);
      auto model = models::make_model(name, {3, 32, 32, 10}, width);
      model->train();
      auto plain = regularize::make_plain();
      const auto reference = run_step(*plain, *model, x, y);
      torch::manual_seed(1);
      model = models::make_model(name, {3, 32, 32, 10}, width);
      model->train();
      auto regularizer = regularize::make_regularizer(config);
      const auto result = run_step(*regularizer, *model, x, y);
      CHECK(result.value > reference.value);  // the penalty is positive
      bool finite = true, differs = false;
      for (size_t i = 0; i < result.grads.size(); ++i) {
        finite = finite && torch::isfinite(result.grads[i]).all().item<bool>();
        differs = differs || !torch::equal(result.grads[i], reference.grads[i]);
      }
      CHECK(finite);
      CHECK(differs);
      for (const auto& point : model->quant_points()) {
        CHECK_FALSE(point->recording());
        CHECK_FALSE(point->perturbation().defined());
        CHECK_FALSE(point->quantizer());
      }
    }
  }
}

TEST_CASE("a channels-last model and batch give the penalized step as accurately as the default layout") {
  torch::manual_seed(2);
  const auto x = torch::randn({4, 3, 32, 32});
  const auto y = torch::randint(0, 10, {4}, torch::kLong);
  for (const auto& [name, width] : std::vector<std::pair<std::string, int64_t>>{{"resnet20", 0}, {"vgg_like", 32}}) {
    INFO(name);
    auto regularizer = regularize::make_regularizer(penalty("grad_l1", 0.1, 0.1));
    auto step = [&](c10::MemoryFormat format, torch::Dtype dtype) {
      torch::manual_seed(1);
      auto model = models::make_model(name, {3, 32, 32, 10}, width);
      model->to(dtype);
      model->train();
      model->set_memory_format(format);
      const auto& first_conv = model->quant_layers().front();
      CHECK(first_conv.weight().is_contiguous(format));
      CHECK(first_conv.forward_weight().is_contiguous(format));  // the layer reads the same tensor
      return run_step(*regularizer, *model, x.to(dtype).contiguous(format), y);
    };
    // Float rounding differs with the layout; against a float64 step, the channels-last step's
    // error is of the default layout's size.
    const auto exact = step(c10::MemoryFormat::Contiguous, torch::kDouble);
    const auto contiguous = step(c10::MemoryFormat::Contiguous, torch::kFloat);
    const auto channels_last = step(c10::MemoryFormat::ChannelsLast, torch::kFloat);
    CHECK(channels_last.value == Approx(exact.value).epsilon(1e-5));
    REQUIRE(channels_last.grads.size() == exact.grads.size());
    auto error = [&](const Objective& o) {
      double worst = 0;
      for (size_t i = 0; i < exact.grads.size(); ++i)
        worst = std::max(worst, ((o.grads[i].to(torch::kDouble) - exact.grads[i]).abs().max() / exact.grads[i].abs().max()).item<double>());
      return worst;
    };
    INFO("relative error, default layout " << error(contiguous) << ", channels-last " << error(channels_last));
    CHECK(error(channels_last) <= 3 * error(contiguous) + 1e-6);
  }
}

TEST_CASE("lambda = 0 trains bit-identically to no regularizer, lambda > 0 does not") {
  testing::TempDir data, runs;
  testing::write_cifar10(data.path(), 32);
  auto none = testing::tiny_config(data.path(), 2);
  auto zero = none;
  zero.regularizer = penalty("grad_l1", 0, 0);
  auto positive = none;
  positive.regularizer = penalty("grad_l1", 0.01, 0.01);
  std::vector<std::string> checkpoints;
  for (const auto& [label, config] : {std::pair<std::string, config::ExperimentConfig>{"none", none}, {"zero", zero}, {"positive", positive}}) {
    train::TrainOptions options;
    options.run_dir = runs.file(label);
    train::train(config, options);
    checkpoints.push_back(train::checkpoint_path(options.run_dir));
  }
  auto weights = [&](const std::string& path) {
    auto model = models::build_model(none.model, data::dataset_info(none.data).input(), none.seed, torch::kCPU);
    io::load_checkpoint(path, *model, nullptr);
    return torch::cat(
        [&] { std::vector<torch::Tensor> all; for (auto& p : model->parameters()) all.push_back(p.flatten()); return all; }());
  };
  CHECK(torch::equal(weights(checkpoints[0]), weights(checkpoints[1])));
  CHECK_FALSE(torch::equal(weights(checkpoints[0]), weights(checkpoints[2])));
}

TEST_CASE("subbatch: CE's gradient on the whole batch plus the exact penalty's on its first m images") {
  torch::manual_seed(9);
  auto model = std::make_shared<TinyNetImpl>();
  model->to(torch::kDouble);
  const auto x = torch::randn({8, 1, 4, 4}, torch::kDouble);
  const auto y = torch::randint(0, 3, {8}, torch::kLong);
  const int64_t m = 3;
  for (const auto& name : {"grad_l1", "grad_l2"}) {
    INFO(name);
    auto config = penalty(name, 0.4, 0.6);
    auto exact = regularize::make_regularizer(config);
    auto plain = regularize::make_plain();
    config.subbatch(m);
    auto sub = regularize::make_regularizer(config);
    // Reference from the exact and plain steps: plain(all) + exact(first m) − plain(first m).
    const auto x_m = x.narrow(0, 0, m), y_m = y.narrow(0, 0, m);
    const auto all = run_step(*plain, *model, x, y), penalized_m = run_step(*exact, *model, x_m, y_m),
               plain_m = run_step(*plain, *model, x_m, y_m);
    const auto result = run_step(*sub, *model, x, y);
    CHECK(result.value == Approx(all.value + (penalized_m.value - plain_m.value)).epsilon(1e-12));
    for (size_t i = 0; i < result.grads.size(); ++i)
      CHECK(torch::allclose(result.grads[i], all.grads[i] + penalized_m.grads[i] - plain_m.grads[i], 1e-10, 1e-12));
    // And the step's gradient is that of the value it reports (CE on all + penalty on m).
    CHECK(gradient_check(*sub, *model, x, y) < 1e-6);
  }
}

TEST_CASE("subbatch: the penalty's extra forward pass leaves batch-norm running statistics as the plain step does") {
  const auto x = torch::randn({8, 3, 16, 16});
  const auto y = torch::randint(0, 10, {8}, torch::kLong);
  auto buffers_after = [&](regularize::Regularizer& regularizer) {
    torch::manual_seed(2);
    auto model = models::make_model("resnet8", {3, 16, 16, 10}, 4);
    model->train();
    run_step(regularizer, *model, x, y);
    std::vector<torch::Tensor> out;
    for (const auto& b : model->buffers()) out.push_back(b.clone());
    return out;
  };
  auto config = penalty("grad_l1", 0.1, 0.1);
  config.subbatch(4);
  auto plain = regularize::make_plain();
  auto sub = regularize::make_regularizer(config);
  auto exact_on_first_four = [&] {  // what the buffers would be if the second pass kept its update
    torch::manual_seed(2);
    auto model = models::make_model("resnet8", {3, 16, 16, 10}, 4);
    model->train();
    run_step(*plain, *model, x, y);
    run_step(*plain, *model, x.narrow(0, 0, 4), y.narrow(0, 0, 4));
    return model->buffers();
  }();
  const auto a = buffers_after(*plain), b = buffers_after(*sub);
  REQUIRE(a.size() == b.size());
  bool second_pass_moves_them = false;
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(torch::equal(a[i], b[i]));
    second_pass_moves_them = second_pass_moves_them || !torch::equal(a[i], exact_on_first_four[i]);
  }
  CHECK(second_pass_moves_them);  // so the equality above is not vacuous
}

TEST_CASE("every k: the penalized step with k times lambda on steps 0, k, 2k of an epoch, the plain step between") {
  torch::manual_seed(10);
  auto model = std::make_shared<TinyNetImpl>();
  model->to(torch::kDouble);
  const auto x = torch::randn({6, 1, 4, 4}, torch::kDouble);
  const auto y = torch::randint(0, 3, {6}, torch::kLong);
  for (const auto& method : {"double_backprop", "finite_difference"}) {
    INFO(method);
    auto config = penalty("grad_l1", 0.2, 0.3, 0, method);
    auto scaled = config;
    scaled.lambda_w(3 * config.lambda_w()).lambda_a(3 * config.lambda_a());
    config.every(3);
    auto every = regularize::make_regularizer(config);
    auto penalized = regularize::make_regularizer(scaled);
    auto plain = regularize::make_plain();
    const auto p = run_step(*penalized, *model, x, y), q = run_step(*plain, *model, x, y);
    auto same = [](const Objective& a, const Objective& b) {
      bool equal = a.value == Approx(b.value).epsilon(1e-12);
      for (size_t i = 0; i < a.grads.size(); ++i) equal = equal && torch::allclose(a.grads[i], b.grads[i], 1e-10, 1e-12);
      return equal;
    };
    every->begin_epoch();
    for (int step = 0; step < 7; ++step) {
      INFO("step " << step);
      CHECK(same(run_step(*every, *model, x, y), step % 3 == 0 ? p : q));
    }
    every->begin_epoch();  // a new epoch starts with the penalized step again
    CHECK(same(run_step(*every, *model, x, y), p));
  }
}
