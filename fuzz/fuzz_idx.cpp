// An IDX file read as images and as labels (data/idx.h), plain or gzipped.
#include "data/idx.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = qrobust::fuzz::write_input("input.idx", data, size);
  qrobust::fuzz::expect_clean([&] { qrobust::data::read_idx_images(path); });
  qrobust::fuzz::expect_clean([&] { qrobust::data::read_idx_labels(path); });
  return 0;
}
