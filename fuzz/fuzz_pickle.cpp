// The unpickler on raw bytes (io/pickle.h).
#include "fuzz_input.h"
#include "io/pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qrobust::fuzz::expect_clean([&] { qrobust::io::unpickle(std::string(reinterpret_cast<const char*>(data), size)); });
  return 0;
}
