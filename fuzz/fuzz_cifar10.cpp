// A CIFAR-10 test batch (data/cifar10.h).
#include "data/cifar10.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qrobust::fuzz::write_input("test_batch.bin", data, size);
  qrobust::fuzz::expect_clean(
      [&] { qrobust::data::CIFAR10(qrobust::fuzz::scratch_dir(), qrobust::data::CIFAR10::Mode::kTest); });
  return 0;
}
