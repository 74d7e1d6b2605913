#include <catch2/catch.hpp>

#include <map>
#include <memory>

#include "models/complexity.h"
#include "models/layer_ops.h"
#include "models/registry.h"
#include "test_support.h"

using namespace qrobust;

TEST_CASE("build_model: weights as after manual_seed(seed), and the global generator left as it was") {
  const auto options = models::ModelOptions().name("resnet8").width(4);
  const models::InputSpec input{3, 8, 8, 10};
  torch::manual_seed(7);
  auto reference = models::make_model("resnet8", input, 4);
  torch::manual_seed(123);
  const auto next_draw = torch::rand({4});
  torch::manual_seed(123);
  auto built = models::build_model(options, input, 7, torch::kCPU);
  CHECK(torch::equal(torch::rand({4}), next_draw));  // building drew nothing from the global generator
  const auto want = reference->state(), got = built->state();
  REQUIRE(got.size() == want.size());
  for (const auto& item : want) CHECK(torch::equal(got[item.key()], item.value()));
  auto other_seed = models::build_model(options, input, 8, torch::kCPU);
  CHECK_FALSE(torch::equal(other_seed->state()["conv1.weight"], want["conv1.weight"]));
}

TEST_CASE("every shipped model maps CIFAR and Fashion-MNIST shaped batches to class logits") {
  torch::NoGradGuard no_grad;
  for (const auto& [name, width] : testing::shipped_models()) {
    for (const auto& input : {models::InputSpec{3, 32, 32, 10}, models::InputSpec{1, 28, 28, 10}}) {
      auto model = models::make_model(name, input, width);
      model->eval();
      const auto out = model->forward(torch::randn({2, input.channels, input.height, input.width}));
      INFO(name << " on " << input.channels << "x" << input.height);
      CHECK(out.sizes() == torch::IntArrayRef({2, 10}));
    }
  }
}

TEST_CASE("parameter counts match the published architectures") {
  const models::InputSpec cifar{3, 32, 32, 10};
  // He et al. 2016, table 6: ResNet-20 0.27M, ResNet-56 0.85M (option A, no shortcut weights).
  CHECK(models::make_model("resnet20", cifar)->parameter_count() == Approx(0.27e6).epsilon(0.01));
  CHECK(models::make_model("resnet56", cifar)->parameter_count() == Approx(0.85e6).epsilon(0.01));
  // ResNet-18 for CIFAR: 11.17M.
  CHECK(models::make_model("resnet18_cifar", cifar)->parameter_count() == Approx(11.17e6).epsilon(0.005));
  // VGG-like: convs 3->128->128, 128->256->256, 256->512->512 (no bias) + BN, FC 8192->1024 (no bias) + BN,
  // FC 1024->10.
  const int64_t convs = 9 * (3 * 128 + 128 * 128 + 128 * 256 + 256 * 256 + 256 * 512 + 512 * 512);
  const int64_t norms = 2 * (128 * 2 + 256 * 2 + 512 * 2 + 1024);
  CHECK(models::make_model("vgg_like", cifar)->parameter_count() == convs + norms + 8192 * 1024 + 1024 * 10 + 10);
}

TEST_CASE("ImageNet ResNets have torchvision's parameter counts, names and shapes") {
  const models::InputSpec imagenet{3, 224, 224, 1000};
  // torchvision 0.14: sum(p.numel() for p in resnetN().parameters()) and len(state_dict()).
  for (const auto& [name, parameters, tensors] : std::vector<std::tuple<std::string, int64_t, size_t>>{
           {"resnet18", 11689512, 122}, {"resnet34", 21797672, 218}, {"resnet50", 25557032, 320}}) {
    INFO(name);
    auto model = models::make_model(name, imagenet);
    CHECK(model->parameter_count() == parameters);
    CHECK(model->named_parameters().size() + model->named_buffers().size() == tensors);
  }
  auto resnet50 = models::make_model("resnet50", imagenet);
  const auto params = resnet50->named_parameters();
  CHECK(params["conv1.weight"].sizes() == torch::IntArrayRef({64, 3, 7, 7}));
  CHECK(params["layer2.0.conv2.weight"].sizes() == torch::IntArrayRef({128, 128, 3, 3}));  // v1.5: stride on the 3x3
  CHECK(params["layer4.2.conv3.weight"].sizes() == torch::IntArrayRef({2048, 512, 1, 1}));
  CHECK(params["layer3.0.downsample.0.weight"].sizes() == torch::IntArrayRef({1024, 512, 1, 1}));
  CHECK(params["fc.weight"].sizes() == torch::IntArrayRef({1000, 2048}));
  CHECK(resnet50->named_buffers()["layer1.0.bn3.num_batches_tracked"].numel() == 1);
  CHECK(resnet50->quant_layers().size() == 1 + 48 + 4 + 1);  // stem, block convs, projections, fc
  CHECK(resnet50->quant_points().size() == 1 + 1 + 16 * 3 + 1);
  auto resnet18 = models::make_model("resnet18", imagenet, 16);
  resnet18->eval();
  torch::NoGradGuard no_grad;
  CHECK(resnet18->forward(torch::randn({1, 3, 224, 224})).sizes() == torch::IntArrayRef({1, 1000}));
}

TEST_CASE("quantizable layers pair every conv with its batch norm and list every weight") {
  auto model = models::make_model("resnet20", {3, 32, 32, 10});
  const auto& layers = model->quant_layers();
  REQUIRE(layers.size() == 20);  // stem + 18 block convs + fc
  CHECK(layers.front().name == "conv1");
  CHECK(layers.back().name == "fc");
  CHECK(layers.back().norm == nullptr);
  int64_t weights = 0;
  for (const auto& layer : layers) {
    if (layer.name != "fc") CHECK(layer.norm != nullptr);
    weights += layer.weight().numel();
    // The declared name is the parameter path.
    CHECK(model->named_parameters()[layer.name + ".weight"].is_same(layer.weight()));
  }
  int64_t all_weights = 0;
  for (const auto& p : model->named_parameters())
    if (p.key().find("bn") == std::string::npos && p.key().size() > 7 && p.key().substr(p.key().size() - 7) == ".weight")
      all_weights += p.value().numel();
  CHECK(weights == all_weights);

  auto resnet18 = models::make_model("resnet18_cifar", {3, 32, 32, 10});
  CHECK(resnet18->quant_layers().size() == 1 + 16 + 3 + 1);  // stem, block convs, 3 projections, fc
}

TEST_CASE("quantization points see every activation in forward order") {
  auto model = models::make_model("resnet20", {3, 32, 32, 10}, 4);
  model->eval();
  REQUIRE(model->quant_points().size() == 1 + 1 + 18 + 1);  // input, stem, two per block, pooled
  const auto& points = model->quant_points();
  auto record = std::make_unique<models::RecordScope>(points);
  const auto images = torch::randn({3, 3, 32, 32});
  const auto logits = model->forward(images);
  CHECK(torch::equal(points.front()->recorded(), images));
  // The last point is the classifier's input: the fc applied to it gives the logits.
  auto* fc = model->quant_layers().back().layer->as<torch::nn::Linear>();
  CHECK(torch::allclose(fc->forward(points.back()->recorded()), logits));
  for (const auto& point : points) CHECK(point->recorded().defined());
  // Every ReLU output is non-negative.
  for (size_t i = 1; i + 1 < points.size(); ++i) CHECK(points[i]->recorded().min().item<float>() >= 0);
  record.reset();
  CHECK_FALSE(points.front()->recorded().defined());
}

TEST_CASE("unknown model names are usage errors listing the known ones") {
  CHECK_THROWS_WITH(models::make_model("resnet21", {}), Catch::Contains("unknown model \"resnet21\"") && Catch::Contains("vgg_like"));
  CHECK(models::is_known_model("resnet110"));
  CHECK_FALSE(models::is_known_model("resnet19"));
}

TEST_CASE("the models' convolution equals LibTorch's in value, gradient and second derivative") {
  torch::manual_seed(9);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 4, 3).stride(2).padding(1).bias(true));
  conv->to(torch::kDouble);
  const auto x = torch::randn({2, 3, 7, 7}, torch::dtype(torch::kDouble).requires_grad(true));
  // A scalar built from the first derivative, differentiated again: exercises every term.
  auto second_order = [&](const torch::Tensor& y) {
    const auto grads = torch::autograd::grad({y.pow(2).sum()}, {x, conv->weight}, {}, true, true);
    const auto penalty = grads[0].abs().sum() + grads[1].pow(2).sum();
    return torch::autograd::grad({penalty}, {x, conv->weight, conv->bias});
  };
  const auto ours = models::conv2d(x, *conv);
  const auto reference = conv->forward(x);
  CHECK(torch::allclose(ours, reference));
  const auto a = second_order(ours), b = second_order(reference);
  for (size_t i = 0; i < a.size(); ++i) CHECK(torch::allclose(a[i], b[i], 1e-9, 1e-9));
}

TEST_CASE("the models' batch norm equals LibTorch's in value, running statistics and second derivative") {
  torch::manual_seed(11);
  const auto f64 = torch::dtype(torch::kDouble);
  torch::nn::BatchNorm2d ours_2d(5), reference_2d(5);
  torch::nn::BatchNorm1d ours_1d(5), reference_1d(5);
  const std::vector<std::tuple<torch::nn::Module*, torch::nn::Module*, torch::Tensor>> cases = {
      {ours_2d.get(), reference_2d.get(), torch::randn({4, 5, 3, 3}, f64) * 2 + 1},
      {ours_1d.get(), reference_1d.get(), torch::randn({6, 5}, f64) * 2 + 1}};
  for (const auto& [ours_module, reference_module, data] : cases) {
    const bool is_2d = data.dim() == 4;
    INFO((is_2d ? "BatchNorm2d" : "BatchNorm1d"));
    ours_module->to(torch::kDouble);
    reference_module->to(torch::kDouble);
    {
      torch::NoGradGuard no_grad;  // γ, β away from their 1, 0 defaults, the same in both
      const auto gamma = torch::randn({5}, f64), beta = torch::randn({5}, f64);
      for (auto* module : {ours_module, reference_module}) {
        module->named_parameters()["weight"].copy_(gamma);
        module->named_parameters()["bias"].copy_(beta);
      }
    }
    const auto x = data.clone().requires_grad_(true);
    auto forward = [&](torch::nn::Module* module, bool custom) {
      if (is_2d) {
        auto& norm = *module->as<torch::nn::BatchNorm2d>();
        return custom ? models::batch_norm(x, norm) : norm.forward(x);
      }
      auto& norm = *module->as<torch::nn::BatchNorm1d>();
      return custom ? models::batch_norm(x, norm) : norm.forward(x);
    };
    const auto y_ours = forward(ours_module, true), y_reference = forward(reference_module, false);
    CHECK(torch::allclose(y_ours, y_reference, 1e-12, 1e-12));
    for (const auto& name : {"running_mean", "running_var", "num_batches_tracked"})
      CHECK(torch::equal(ours_module->named_buffers()[name], reference_module->named_buffers()[name]));

    // A scalar of every first derivative (input, γ, β), differentiated again with respect to the
    // input, γ and β: exercises every term of the second derivative.
    const auto weights = torch::randn_like(y_ours);
    auto second_order = [&](const torch::Tensor& y, torch::nn::Module* module) {
      const auto gamma = module->named_parameters()["weight"], beta = module->named_parameters()["bias"];
      const auto first = torch::autograd::grad({(y.pow(3) * weights).sum()}, {x, gamma, beta}, {}, true, true);
      const auto penalty = first[0].abs().sum() + first[1].pow(2).sum() + (first[2] * first[2].sin()).sum();
      auto out = torch::autograd::grad({penalty}, {x, gamma, beta});
      out.insert(out.end(), first.begin(), first.end());
      return out;
    };
    const auto a = second_order(y_ours, ours_module), b = second_order(y_reference, reference_module);
    const char* names[] = {"d/dx", "d/dγ", "d/dβ", "dx", "dγ", "dβ"};
    for (size_t i = 0; i < a.size(); ++i) {
      INFO(names[i]);
      CHECK(torch::allclose(a[i], b[i], 1e-9, 1e-9));
    }
  }
}

TEST_CASE("the models' ReLU equals LibTorch's in value, gradient and second derivative") {
  torch::manual_seed(12);
  const auto x = torch::randn({4, 3, 5, 5}, torch::dtype(torch::kDouble).requires_grad(true));
  const auto weights = torch::randn({4, 3, 5, 5}, torch::kDouble);
  // The loss also depends on x directly, so that the gradient reaching the ReLU does not vanish
  // where the ReLU is off: a second derivative that forgot the mask would differ there.
  auto derivatives = [&](const torch::Tensor& y) {
    const auto first = torch::autograd::grad({(y * x.sin() * weights).sum()}, {x}, {}, true, true)[0];
    return std::make_pair(first, torch::autograd::grad({(first * weights).sum() + first.pow(2).sum()}, {x})[0]);
  };
  const auto ours = models::relu(x), reference = torch::relu(x);
  CHECK(torch::equal(ours, reference));
  const auto [first_ours, second_ours] = derivatives(ours);
  const auto [first_reference, second_reference] = derivatives(reference);
  CHECK(torch::equal(first_ours, first_reference));
  CHECK(torch::allclose(second_ours, second_reference, 1e-12, 1e-12));
}

TEST_CASE("multiply-accumulates per image are every convolution's and linear layer's, counted by hand") {
  // resnet8 of width 4 on 3x8x8: stem 8x8; stages at 8x8, 4x4, 2x2 with 4, 8, 16 channels.
  auto model = models::make_model("resnet8", {3, 8, 8, 10}, 4);
  model->train();
  const int64_t expected = 4 * 3 * 9 * 64                          // conv1
                           + 2 * (4 * 4 * 9 * 64)                   // layer1: two 4->4 convs at 8x8
                           + 8 * 4 * 9 * 16 + 8 * 8 * 9 * 16        // layer2 at 4x4
                           + 16 * 8 * 9 * 4 + 16 * 16 * 9 * 4       // layer3 at 2x2
                           + 16 * 10;                               // fc
  const auto mean = model->named_buffers()["bn1.running_mean"].clone();
  CHECK(models::macs_per_image(*model) == expected);
  CHECK(model->is_training());  // the mode is kept
  CHECK(torch::equal(model->named_buffers()["bn1.running_mean"], mean));  // and the statistics
  auto vgg = models::make_model("vgg_like", {3, 32, 32, 10}, 32);
  // 32-32-64-64-128-128 convs at 32, 32, 16, 16, 8, 8 pixels; FC 128*4*4 -> 256 -> 10.
  const int64_t vgg_expected = (3 * 32 + 32 * 32) * 9 * 1024 + (32 * 64 + 64 * 64) * 9 * 256 +
                               (64 * 128 + 128 * 128) * 9 * 64 + 128 * 16 * 256 + 256 * 10;
  CHECK(models::macs_per_image(*vgg) == vgg_expected);
}

TEST_CASE("per-layer costs: weights, multiply-accumulates and the point each layer reads, counted by hand") {
  // resnet8 of width 4 on 3x8x8, as above; CIFAR ResNets pad their shortcuts (no convolution).
  auto model = models::make_model("resnet8", {3, 8, 8, 10}, 4);
  struct Expected {
    int64_t weights, macs;
    std::string input;
  };
  const std::map<std::string, Expected> expected{
      {"conv1", {4 * 3 * 9, 4 * 3 * 9 * 64, "input_point"}},
      {"layer1.0.conv1", {4 * 4 * 9, 4 * 4 * 9 * 64, "act1"}},
      {"layer1.0.conv2", {4 * 4 * 9, 4 * 4 * 9 * 64, "layer1.0.act1"}},
      {"layer2.0.conv1", {8 * 4 * 9, 8 * 4 * 9 * 16, "layer1.0.act2"}},
      {"layer2.0.conv2", {8 * 8 * 9, 8 * 8 * 9 * 16, "layer2.0.act1"}},
      {"layer3.0.conv1", {16 * 8 * 9, 16 * 8 * 9 * 4, "layer2.0.act2"}},
      {"layer3.0.conv2", {16 * 16 * 9, 16 * 16 * 9 * 4, "layer3.0.act1"}},
      {"fc", {16 * 10, 16 * 10, "pooled_point"}}};
  const auto costs = models::layer_costs(*model);
  REQUIRE(costs.size() == expected.size());
  int64_t macs = 0;
  for (size_t i = 0; i < costs.size(); ++i) {
    const auto& name = model->quant_layers()[i].name;
    INFO(name);
    REQUIRE(expected.count(name) == 1);
    CHECK(costs[i].weights == expected.at(name).weights);
    CHECK(costs[i].macs == expected.at(name).macs);
    CHECK(model->quant_points()[costs[i].input_point]->name() == expected.at(name).input);
    macs += costs[i].macs;
  }
  CHECK(macs == models::macs_per_image(*model));
  // Through max pooling and flattening: the VGG-like's layers read the point before the pool.
  auto vgg = models::make_model("vgg_like", {3, 32, 32, 10}, 8);
  const auto vgg_costs = models::layer_costs(*vgg);
  int64_t vgg_macs = 0;
  for (size_t i = 0; i < vgg_costs.size(); ++i) {
    vgg_macs += vgg_costs[i].macs;
    CHECK(vgg_costs[i].input_point == i);  // input, then each layer's activation feeds the next layer
  }
  CHECK(vgg_macs == models::macs_per_image(*vgg));
}

TEST_CASE("LibTorchLayerOpsGuard switches this thread to LibTorch's layer ops and restores the previous mode") {
  const auto x = torch::randn({2, 3}, torch::requires_grad());
  const auto node = [&] { return models::relu(x).grad_fn()->name(); };
  const std::string custom = node();
  {
    models::LibTorchLayerOpsGuard libtorch_ops;
    const std::string libtorch = node();
    CHECK(libtorch != custom);
    {
      models::LibTorchLayerOpsGuard nested;
      CHECK(node() == libtorch);
    }
    CHECK(node() == libtorch);  // the inner guard restored the outer one's mode
  }
  CHECK(node() == custom);
}
