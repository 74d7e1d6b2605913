// A config file's text (config/config.h): YAML parsing, every key's validation, and writing the
// parsed config back out, which must parse to the same config.
#include "config/config.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qrobust;
  fuzz::expect_clean([&] {
    const auto config = config::parse_config(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
    const auto text = config::to_yaml(config);
    if (config::to_yaml(config::parse_config(text, "round-trip.yaml")) != text) std::abort();
  });
  return 0;
}
