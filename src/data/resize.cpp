#include "data/resize.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace qrobust::data {

WindowResize::Taps WindowResize::taps(int64_t in, int64_t out, int64_t begin, int64_t count) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double support = std::max(scale, 1.0);  // the bilinear filter's radius, widened when shrinking
  const double inverse = 1.0 / support;
  Taps t;
  t.stride = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  t.weights.assign(static_cast<size_t>(count * t.stride), 0.0f);
  for (int64_t i = 0; i < count; ++i) {
    const double center = scale * (static_cast<double>(begin + i) + 0.5);
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in);
    double total = 0;
    std::vector<double> w(static_cast<size_t>(hi - lo));
    for (int64_t x = lo; x < hi; ++x) {
      w[static_cast<size_t>(x - lo)] = std::max(0.0, 1.0 - std::abs((static_cast<double>(x) - center + 0.5) * inverse));
      total += w[static_cast<size_t>(x - lo)];
    }
    t.first.push_back(lo);
    t.size.push_back(hi - lo);
    for (int64_t k = 0; k < hi - lo; ++k)
      t.weights[static_cast<size_t>(i * t.stride + k)] = static_cast<float>(total > 0 ? w[static_cast<size_t>(k)] / total : 0);
  }
  return t;
}

WindowResize::WindowResize(const ResizeGeometry& geometry) : geometry_(geometry) {
  const PixelWindow& window = geometry.window;
  TORCH_CHECK(window.top >= 0 && window.left >= 0 && window.height > 0 && window.width > 0 &&
                  window.top + window.height <= geometry.out_height && window.left + window.width <= geometry.out_width,
              "resize window outside the output");
  rows_ = taps(geometry.in_height, geometry.out_height, window.top, window.height);
  columns_ = taps(geometry.in_width, geometry.out_width, window.left, window.width);
  source_ = {rows_.first.front(), columns_.first.front(), rows_.first.back() + rows_.size.back() - rows_.first.front(),
             columns_.first.back() + columns_.size.back() - columns_.first.front()};
}

void WindowResize::apply(const torch::Tensor& source_pixels, bool mirror, torch::Tensor& out) const {
  const PixelWindow& window = geometry_.window;
  TORCH_CHECK(source_pixels.dim() == 3 && source_pixels.size(0) == source_.height && source_pixels.size(1) == source_.width &&
                  source_pixels.size(2) == 3 && source_pixels.dtype() == torch::kUInt8,
              "resize_window wants the uint8 source part of the input");
  TORCH_CHECK(out.is_contiguous() && out.dtype() == torch::kUInt8 &&
                  out.sizes() == torch::IntArrayRef({3, window.height, window.width}),
              "resize_window: `out` must be contiguous uint8 3 x window");
  const auto pixels = source_pixels.contiguous();
  const int64_t in_width = source_.width;
  const uint8_t* in = pixels.data_ptr<uint8_t>();

  // Horizontal pass over the source rows: float rows x window.width x 3.
  std::vector<float> horizontal(static_cast<size_t>(source_.height * window.width * 3));
  for (int64_t y = 0; y < source_.height; ++y) {
    const uint8_t* line = in + y * in_width * 3;
    float* target = horizontal.data() + y * window.width * 3;
    for (int64_t j = 0; j < window.width; ++j) {
      const uint8_t* p = line + (columns_.first[static_cast<size_t>(j)] - source_.left) * 3;
      const float* w = columns_.weights.data() + j * columns_.stride;
      float r = 0, g = 0, b = 0;
      for (int64_t k = 0; k < columns_.size[static_cast<size_t>(j)]; ++k, p += 3) {
        r += w[k] * p[0];
        g += w[k] * p[1];
        b += w[k] * p[2];
      }
      target[3 * j] = r;
      target[3 * j + 1] = g;
      target[3 * j + 2] = b;
    }
  }

  // Vertical pass straight into uint8 planes.
  uint8_t* planes = out.data_ptr<uint8_t>();
  const int64_t plane = window.height * window.width;
  std::vector<float> sums(static_cast<size_t>(window.width * 3));
  for (int64_t i = 0; i < window.height; ++i) {
    std::fill(sums.begin(), sums.end(), 0.0f);
    const float* w = rows_.weights.data() + i * rows_.stride;
    for (int64_t k = 0; k < rows_.size[static_cast<size_t>(i)]; ++k) {
      const float* line = horizontal.data() + (rows_.first[static_cast<size_t>(i)] + k - source_.top) * window.width * 3;
      for (int64_t x = 0; x < window.width * 3; ++x) sums[static_cast<size_t>(x)] += w[k] * line[x];
    }
    for (int64_t j = 0; j < window.width; ++j) {
      const int64_t column = mirror ? window.width - 1 - j : j;
      for (int64_t c = 0; c < 3; ++c)
        planes[c * plane + i * window.width + column] =
            static_cast<uint8_t>(std::clamp(sums[static_cast<size_t>(3 * j + c)], 0.0f, 255.0f) + 0.5f);
    }
  }
}

torch::Tensor resize_window(const torch::Tensor& pixels, int64_t out_height, int64_t out_width, PixelWindow window,
                            bool mirror) {
  const WindowResize resize({pixels.size(0), pixels.size(1), out_height, out_width, window});
  const PixelWindow& source = resize.source();
  auto out = torch::empty({3, window.height, window.width}, torch::kUInt8);
  resize.apply(pixels.narrow(0, source.top, source.height).narrow(1, source.left, source.width), mirror, out);
  return out;
}

}  // namespace qrobust::data
