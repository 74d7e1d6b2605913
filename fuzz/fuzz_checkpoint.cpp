// A checkpoint file loaded into a small ResNet and its SGD optimizer (io/checkpoint.h): the zip
// reader, the unpickler, the tensor checks and every tensor's load.
#include "fuzz_input.h"
#include "io/checkpoint.h"
#include "models/registry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qrobust;
  static auto model = models::make_model("resnet8", {3, 32, 32, 10}, 4);
  static torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  const auto path = fuzz::write_input("checkpoint.pt", data, size);
  fuzz::expect_clean([&] { io::load_checkpoint(path, *model, &optimizer); });
  return 0;
}
