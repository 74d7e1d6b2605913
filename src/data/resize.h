#pragma once
// Antialiased bilinear image resizing, the filter of PIL and of ATen's
// interpolate(bilinear, antialias=true), on uint8 RGB pixels. ATen's version converts to float
// and took ~1 ms per ImageNet-sized image here (one thread), more than decoding the JPEG; this
// separable pass over uint8 takes a fraction of that and computes only the output pixels a crop
// keeps.
#include <torch/torch.h>

#include <vector>

#include "data/jpeg.h"

namespace qrobust::data {

// Resizing an in_height x in_width image to out_height x out_width, of which only `window` is kept.
struct ResizeGeometry {
  int64_t in_height = 0, in_width = 0, out_height = 0, out_width = 0;
  PixelWindow window;
};

// One resize, planned once: the filter taps of every kept output row and column, and so the
// part of the input they read.
class WindowResize {
 public:
  explicit WindowResize(const ResizeGeometry& geometry);

  // The part of the input that the kept window reads (the filter's reach around it).
  const PixelWindow& source() const { return source_; }

  // Writes the window of the resized image, mirrored left-right if `mirror`, into `out`
  // (contiguous uint8 3 x window.height x window.width). `source_pixels` is uint8 h x w x 3 and
  // holds exactly the source() part of the input.
  void apply(const torch::Tensor& source_pixels, bool mirror, torch::Tensor& out) const;

 private:
  struct Taps {
    std::vector<int64_t> first, size;  // per output index: first input index read, how many
    std::vector<float> weights;        // normalized triangle-filter weights, `stride` slots each
    int64_t stride = 0;
  };
  static Taps taps(int64_t in, int64_t out, int64_t begin, int64_t count);

  ResizeGeometry geometry_;
  Taps rows_, columns_;
  PixelWindow source_;
};

// The window of the resized whole input image (uint8 H x W x 3), into a new tensor.
torch::Tensor resize_window(const torch::Tensor& pixels, int64_t out_height, int64_t out_width, PixelWindow window,
                            bool mirror = false);

}  // namespace qrobust::data
