// JPEG bytes (data/jpeg.h): the header's size, a full decode and a scaled, windowed one.
#include "data/jpeg.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qrobust;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  fuzz::expect_clean([&] {
    const auto full = data::jpeg_size(bytes);
    if (full.width * full.height > (1 << 24)) return;  // the decoder's memory, not its safety
    data::decode_jpeg(bytes, {});
    data::decode_jpeg(bytes, {1, 2}, data::PixelWindow{0, 0, 8, 8});
  });
  return 0;
}
