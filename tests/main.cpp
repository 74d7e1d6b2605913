#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "util/runtime.h"

int main(int argc, char* argv[]) {
  // One intra-op thread per test process, as the test configs ask (threads: 1): ctest runs
  // the tests side by side, one per core, and the library leaves the count to its caller.
  qrobust::util::configure_threads(1);
  return Catch::Session().run(argc, argv);
}
