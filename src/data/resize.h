#pragma once
// Antialiased bilinear image resizing, the filter of PIL and of ATen's
// interpolate(bilinear, antialias=true), on uint8 RGB pixels. ATen's version converts to float
// and took ~1 ms per ImageNet-sized image here (one thread), more than decoding the JPEG; this
// separable pass over uint8 takes a fraction of that and computes only the output pixels a crop
// keeps.
#include <torch/torch.h>

#include "data/jpeg.h"

namespace qrobust::data {

// Resizing an in_height x in_width image to out_height x out_width, of which only `window` is kept.
struct ResizeGeometry {
  int64_t in_height = 0, in_width = 0, out_height = 0, out_width = 0;
  PixelWindow window;
};

// The part of the input that the kept window reads (the filter's reach around it).
PixelWindow resize_source(const ResizeGeometry& geometry);

// Writes the window of the resized image, mirrored left-right if `mirror`, into `out`
// (contiguous uint8 3 x window.height x window.width). `source_pixels` is uint8 h x w x 3 and
// holds exactly the resize_source() part of the input.
void resize_window(const torch::Tensor& source_pixels, const ResizeGeometry& geometry, bool mirror, torch::Tensor& out);

// The same from the whole input image (uint8 H x W x 3), into a new tensor.
torch::Tensor resize_window(const torch::Tensor& pixels, int64_t out_height, int64_t out_width, PixelWindow window,
                            bool mirror = false);

}  // namespace qrobust::data
