#include <catch2/catch.hpp>

#include "data/resize.h"

using namespace qrobust;
namespace F = torch::nn::functional;

namespace {

// LibTorch's antialiased bilinear interpolation, rounded to uint8: the reference.
torch::Tensor aten_resize(const torch::Tensor& pixels, int64_t height, int64_t width) {
  const auto resized = F::interpolate(pixels.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat),
                                      F::InterpolateFuncOptions()
                                          .size(std::vector<int64_t>{height, width})
                                          .mode(torch::kBilinear)
                                          .align_corners(false)
                                          .antialias(true));
  return resized.squeeze(0).round().clamp(0, 255).to(torch::kUInt8);
}

int max_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kInt) - b.to(torch::kInt)).abs().max().item<int>();
}

}  // namespace

TEST_CASE("resize_window matches LibTorch's antialiased bilinear interpolation") {
  auto generator = at::detail::createCPUGenerator(3);
  const auto pixels = torch::randint(0, 256, {97, 131, 3}, generator, torch::kUInt8);
  for (auto [height, width] : std::vector<std::pair<int64_t, int64_t>>{{40, 50}, {97, 60}, {150, 200}, {31, 131}, {13, 17}}) {
    INFO(height << " x " << width);
    const auto reference = aten_resize(pixels, height, width);
    const auto full = data::resize_window(pixels, height, width, {0, 0, height, width});
    REQUIRE(full.sizes() == reference.sizes());
    CHECK(max_difference(full, reference) <= 1);  // float rounding at .5 may differ by one level
    CHECK((full.to(torch::kInt) != reference.to(torch::kInt)).to(torch::kFloat).mean().item<double>() < 0.01);
    // A window is that part of the full result.
    const data::PixelWindow window{height / 4, width / 3, height / 2, width / 2};
    CHECK(torch::equal(data::resize_window(pixels, height, width, window),
                       full.narrow(1, window.top, window.height).narrow(2, window.left, window.width)));
  }
}

TEST_CASE("resize_window at the input size copies the pixels exactly") {
  auto generator = at::detail::createCPUGenerator(4);
  const auto pixels = torch::randint(0, 256, {32, 32, 3}, generator, torch::kUInt8);
  CHECK(torch::equal(data::resize_window(pixels, 32, 32, {0, 0, 32, 32}), pixels.permute({2, 0, 1})));
  CHECK_THROWS(data::resize_window(pixels, 32, 32, {1, 0, 32, 32}));
}
