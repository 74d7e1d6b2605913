#include <catch2/catch.hpp>

#include <stdexcept>

#include "models/quant_point.h"
#include "models/registry.h"

using namespace qrobust;

TEST_CASE("a point's taps compose in order: observe the float input, quantize, perturb, record") {
  models::QuantPoint point;
  std::vector<models::QuantPoint> points = {point};
  torch::Tensor observed;
  models::ObserveScope observe(points, [&](size_t, const torch::Tensor& x) { observed = x.clone(); });
  models::QuantizeScope quantize(points, {[](const torch::Tensor& x) { return x.round(); }});
  models::PerturbScope perturb(points, {torch::full({3}, 0.25)});
  models::RecordScope record(points);
  const auto x = torch::tensor({0.4, 1.6, -2.2});
  const auto y = point->forward(x);
  CHECK(torch::equal(observed, x));
  CHECK(torch::allclose(y, torch::tensor({0.25, 2.25, -1.75})));
  CHECK(torch::equal(point->recorded(), y));
}

TEST_CASE("scopes restore the state before them, nested or unwound by an exception") {
  auto model = models::make_model("resnet8", {1, 8, 8, 10}, 4);
  const auto& points = model->quant_points();
  const auto scale = [](const torch::Tensor& x) { return x * 2; };
  {
    models::QuantizeScope outer(points, std::vector<models::QuantPointImpl::Quantizer>(points.size(), scale));
    {
      // Only the first point goes float inside; the others keep the outer quantizer.
      std::vector<models::QuantPointImpl::Quantizer> inner_quantizers(points.size(), scale);
      inner_quantizers[0] = nullptr;
      models::QuantizeScope inner(points, inner_quantizers);
      CHECK_FALSE(points[0]->quantizer());
      CHECK(points[1]->quantizer());
    }
    for (const auto& point : points) CHECK(point->quantizer());  // the outer scope's state is back
    try {
      models::RecordScope record(points);
      models::PerturbScope perturb({points[2]}, {torch::ones({1})});
      CHECK(points[2]->perturbation().defined());
      model->forward(torch::randn({2, 1, 8, 8}));
      CHECK(points[3]->recorded().defined());
      throw std::runtime_error("step failed");
    } catch (const std::runtime_error&) {
    }
    for (const auto& point : points) {
      CHECK_FALSE(point->recording());
      CHECK_FALSE(point->recorded().defined());
      CHECK_FALSE(point->perturbation().defined());
      CHECK(point->quantizer());
    }
  }
  for (const auto& point : points) CHECK_FALSE(point->quantizer());
  CHECK_THROWS(models::QuantizeScope(points, {}));  // one quantizer per point
}
