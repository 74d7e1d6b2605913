#include "data/jpeg.h"

// clang-format off
#include <cstdio>  // jpeglib.h needs FILE
#include <jpeglib.h>
// clang-format on
#include <turbojpeg.h>

#include <csetjmp>
#include <cmath>

#include "util/errors.h"

namespace qrobust::data {
namespace {

// libjpeg reports a fatal error by calling error_exit, which must not return: jump back to the
// decode call. Warnings (level -1) are counted and the first one kept.
struct ErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  char warning[JMSG_LENGTH_MAX];
};

void on_error(j_common_ptr info) {
  auto* manager = reinterpret_cast<ErrorManager*>(info->err);
  (*info->err->format_message)(info, manager->message);
  std::longjmp(manager->jump, 1);
}

void on_message(j_common_ptr info, int level) {
  if (level >= 0) return;
  auto* manager = reinterpret_cast<ErrorManager*>(info->err);
  if (info->err->num_warnings++ == 0) (*info->err->format_message)(info, manager->warning);
}

// The plain-C part of a decode. No object with a destructor lives in this frame, so the
// longjmp of a fatal error skips nothing; `out` belongs to the caller. Returns "" or the error,
// worded for the user.
std::string decode_c(const std::string& bytes, JpegScale scale, const PixelWindow* region, torch::Tensor& out,
                     JpegSize& full) {
  jpeg_decompress_struct info;
  ErrorManager errors;
  info.err = jpeg_std_error(&errors.base);
  errors.base.error_exit = on_error;
  errors.base.emit_message = on_message;
  errors.warning[0] = '\0';
  volatile bool header_read = false;  // volatile: read after the longjmp
  if (setjmp(errors.jump)) {
    jpeg_destroy_decompress(&info);
    const char* what = header_read ? "corrupt JPEG (" : bytes.rfind("\xFF\xD8", 0) == 0 ? "unreadable JPEG header (" : "not a JPEG (";
    return what + std::string(errors.message) + ")";
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&info, TRUE);
  full = {info.image_width, info.image_height};
  header_read = true;
  if (scale.num == 0) {  // header only
    jpeg_destroy_decompress(&info);
    return "";
  }
  // A header can claim 65,535 x 65,535 pixels in a few bytes; no photo qrobust trains on is near this.
  constexpr uint64_t kMaxPixels = 1ull << 28;
  if (static_cast<uint64_t>(info.image_width) * info.image_height > kMaxPixels) {
    jpeg_destroy_decompress(&info);
    return "JPEG of " + std::to_string(info.image_width) + "x" + std::to_string(info.image_height) +
           " pixels, more than the " + std::to_string(kMaxPixels) + " qrobust decodes";
  }
  info.out_color_space = JCS_RGB;
  info.scale_num = static_cast<unsigned int>(scale.num);
  info.scale_denom = static_cast<unsigned int>(scale.denom);
  jpeg_start_decompress(&info);
  const PixelWindow window =
      region ? *region : PixelWindow{0, 0, static_cast<int64_t>(info.output_height), static_cast<int64_t>(info.output_width)};
  if (window.top < 0 || window.left < 0 || window.height < 1 || window.width < 1 ||
      window.top + window.height > static_cast<int64_t>(info.output_height) ||
      window.left + window.width > static_cast<int64_t>(info.output_width)) {
    jpeg_destroy_decompress(&info);
    return "decode region outside the image";
  }
  // Columns: libjpeg widens the crop to whole blocks and reports where it starts. At full scale
  // its fancy chroma upsampling then differs from a whole decode by a level or two at some
  // pixels, so only scaled decodes (DCT-domain chroma scaling, identical) are cropped.
  JDIMENSION x = 0;
  if (scale.num < scale.denom && window.width < static_cast<int64_t>(info.output_width)) {
    JDIMENSION width = static_cast<JDIMENSION>(window.width);
    x = static_cast<JDIMENSION>(window.left);
    jpeg_crop_scanline(&info, &x, &width);
  }
  const int64_t shift = window.left - static_cast<int64_t>(x);
  jpeg_skip_scanlines(&info, static_cast<JDIMENSION>(window.top));
  out = torch::empty({window.height, static_cast<int64_t>(info.output_width), 3}, torch::kUInt8);
  for (int64_t row = 0; row < window.height;) {
    JSAMPROW line = out.data_ptr<uint8_t>() + row * static_cast<int64_t>(info.output_width) * 3;
    row += jpeg_read_scanlines(&info, &line, 1);
  }
  // The rows below the region are never decoded.
  const bool truncated = errors.base.num_warnings > 0 && bytes.rfind("\xFF\xD9") == std::string::npos;
  jpeg_destroy_decompress(&info);
  out = out.narrow(1, shift, window.width);
  if (truncated) return std::string("truncated JPEG (") + errors.warning + ")";
  return "";
}

}  // namespace

JpegSize JpegScale::apply(JpegSize size) const {
  return {(size.width * num + denom - 1) / denom, (size.height * num + denom - 1) / denom};
}

JpegSize jpeg_size(const std::string& bytes) {
  torch::Tensor unused;
  JpegSize full;
  const std::string error = decode_c(bytes, {0, 1}, nullptr, unused, full);
  if (!error.empty()) throw RuntimeFailure(error);
  return full;
}

JpegScale covering_scale(double width, double height, double min_width, double min_height) {
  // libjpeg-turbo decodes at any n/8, n = 1..16.
  for (int num = 1; num < 8; ++num) {
    const double factor = num / 8.0;
    if (std::floor(width * factor) >= min_width && std::floor(height * factor) >= min_height) return {num, 8};
  }
  return {1, 1};
}

torch::Tensor decode_jpeg(const std::string& bytes, JpegScale scale, std::optional<PixelWindow> region) {
  torch::Tensor pixels;
  JpegSize full;
  const std::string error = decode_c(bytes, scale, region ? &*region : nullptr, pixels, full);
  if (!error.empty()) throw RuntimeFailure(error);
  return pixels.contiguous();
}

std::string encode_jpeg(const torch::Tensor& pixels, int quality) {
  TORCH_CHECK(pixels.dim() == 3 && pixels.size(2) == 3 && pixels.dtype() == torch::kUInt8, "encode_jpeg wants uint8 H x W x 3");
  const auto rgb = pixels.contiguous();
  tjhandle handle = tjInitCompress();
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  const int status = tjCompress2(handle, rgb.data_ptr<uint8_t>(), static_cast<int>(rgb.size(1)), 0,
                                 static_cast<int>(rgb.size(0)), TJPF_RGB, &buffer, &size, TJSAMP_420, quality, 0);
  const std::string error = status != 0 ? tjGetErrorStr2(handle) : "";
  std::string bytes(reinterpret_cast<const char*>(buffer), status == 0 ? size : 0);
  tjFree(buffer);
  tjDestroy(handle);
  if (status != 0) throw RuntimeFailure("JPEG encoding failed: " + error);
  return bytes;
}

}  // namespace qrobust::data
