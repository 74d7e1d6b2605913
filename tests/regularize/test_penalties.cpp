#include <catch2/catch.hpp>

#include "regularize/penalties.h"

using namespace qrobust::regularize;

TEST_CASE("gradient norms") {
  const auto g = torch::tensor({3.0, -4.0, 0.0});
  CHECK(norm(g, Norm::kL1).item<double>() == Approx(7.0));
  CHECK(norm(g, Norm::kL2).item<double>() == Approx(5.0));
}

TEST_CASE("the Lipschitz penalty is zero for orthonormal rows and ‖WWᵀ − I‖² otherwise") {
  const auto q = std::get<0>(torch::linalg_qr(torch::randn({6, 6}, torch::kDouble)));
  CHECK(lipschitz_penalty(q.narrow(0, 0, 4)).item<double>() == Approx(0.0).margin(1e-20));
  // Wide and tall shapes take the Gram matrix on the smaller side.
  CHECK(lipschitz_penalty(q.narrow(1, 0, 4).contiguous()).item<double>() == Approx(0.0).margin(1e-20));
  const auto w = torch::tensor({{2.0, 0.0}, {0.0, 1.0}}, torch::kDouble);  // WWᵀ − I = diag(3, 0)
  CHECK(lipschitz_penalty(w).item<double>() == Approx(9.0));
  // A conv weight is flattened to (out, in*k*k).
  const auto conv = torch::zeros({2, 1, 2, 2}, torch::kDouble);
  CHECK(lipschitz_penalty(conv).item<double>() == Approx(2.0));  // ‖0 − I₂‖²
}

TEST_CASE("the kurtosis penalty follows its definition") {
  // ±1 has kurtosis 1; a Gaussian about 3; a uniform distribution 1.8 (KURE's target).
  CHECK(kurtosis_penalty(torch::tensor({1.0, -1.0, 1.0, -1.0}), 1.8).item<double>() == Approx(0.64));
  torch::manual_seed(0);
  const auto gaussian = torch::randn({200000}, torch::kDouble);
  CHECK(kurtosis_penalty(gaussian, 0.0).sqrt().item<double>() == Approx(3.0).epsilon(0.02));
  const auto uniform = torch::rand({200000}, torch::kDouble);
  CHECK(kurtosis_penalty(uniform, 1.8).item<double>() < 1e-3);
}
