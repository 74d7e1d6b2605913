#pragma once
// JPEG decoding with libjpeg-turbo. Two savings over decoding whole images: DCT-domain scaling
// (a large image is decoded at the smallest scale, 1/8 .. 1, that still covers what the caller
// needs) and region decoding (only the rows down to the region's bottom are entropy-decoded and
// only the region's columns, widened to whole blocks, are inverse-transformed).
#include <torch/torch.h>

#include <optional>
#include <string>

namespace qrobust::data {

struct JpegSize {
  int64_t width = 0, height = 0;
};

// The scale of a decode: each dimension becomes ceil(dimension * num / denom).
struct JpegScale {
  int num = 1, denom = 1;
  double factor() const { return static_cast<double>(num) / denom; }
  JpegSize apply(JpegSize size) const;
};

// A rectangle of an image, in pixels.
struct PixelWindow {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// Width and height from the header; throws RuntimeFailure if `bytes` is not a JPEG.
JpegSize jpeg_size(const std::string& bytes);

// The smallest scale at which a `width` x `height` region of the full image still spans at
// least `min_width` x `min_height` pixels (1/1 when none does).
JpegScale covering_scale(double width, double height, double min_width, double min_height);

// RGB pixels, uint8 H x W x 3, of `region` (in pixels of the scaled image; all of it when
// absent) of the image decoded at `scale`. Pixels are those of a whole decode (accurate integer
// IDCT, fancy upsampling: what djpeg and PIL give). Throws RuntimeFailure on a corrupt or
// truncated stream. Thread-safe.
torch::Tensor decode_jpeg(const std::string& bytes, JpegScale scale, std::optional<PixelWindow> region = std::nullopt);

// Encodes uint8 H x W x 3 RGB pixels as a baseline JPEG (4:2:0) at `quality` (1..100); for
// test fixtures and the decoding benchmark.
std::string encode_jpeg(const torch::Tensor& pixels, int quality);

}  // namespace qrobust::data
