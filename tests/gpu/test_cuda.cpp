// Compiled only against a CUDA LibTorch (CMakeLists.txt); scripts/gpu_check.sh runs it.
#include <ATen/Context.h>
#include <catch2/catch.hpp>

#include "config/config.h"
#include "models/registry.h"
#include "regularize/regularizer.h"

using namespace qrobust;

namespace {

// All gradients of the model's parameters, concatenated, on the CPU.
torch::Tensor gradients(models::ClassifierImpl& model) {
  std::vector<torch::Tensor> flat;
  for (const auto& p : model.parameters()) flat.push_back(p.grad().detach().cpu().flatten());
  return torch::cat(flat);
}

}  // namespace

TEST_CASE("a grad-l1 training step on CUDA computes what the CPU step computes", "[cuda]") {
  REQUIRE(torch::cuda::is_available());
  // TF32 matrix products would round to 10 bits of mantissa; compare full float32.
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
  const auto penalty = regularize::RegularizerOptions().penalty(regularize::Penalty::kGradL1).lambda_w(0.05).lambda_a(0.05);
  for (const std::string name : {"resnet20", "resnet18"}) {
    INFO(name);
    const models::InputSpec input{3, 32, 32, 10};
    torch::manual_seed(3);
    auto on_cpu = models::make_model(name, input);
    auto on_cuda = models::make_model(name, input);
    {
      torch::NoGradGuard no_grad;
      auto target = on_cuda->named_parameters();
      for (const auto& item : on_cpu->named_parameters()) target[item.key()].copy_(item.value());
    }
    on_cuda->to(torch::kCUDA);
    on_cpu->train();
    on_cuda->train();
    const auto x = torch::randn({16, 3, 32, 32});
    const auto y = torch::randint(0, 10, {16}, torch::kLong);
    const auto regularizer = regularize::make_regularizer(penalty);
    const auto cpu = regularizer->step(*on_cpu, x, y);
    const auto cuda = regularizer->step(*on_cuda, x.cuda(), y.cuda());
    CHECK(std::abs(cuda.penalty - cpu.penalty) / cpu.penalty < 1e-4);
    CHECK(std::abs(cuda.cross_entropy - cpu.cross_entropy) / cpu.cross_entropy < 1e-4);
    const auto reference = gradients(*on_cpu);
    CHECK(((gradients(*on_cuda) - reference).norm() / reference.norm()).item<double>() < 1e-4);
  }
}
