#!/usr/bin/env bash
# Builds qrobust (installing what is missing) and runs the test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
# While the test suite compiles, the optional test dependencies download and install (mostly
# waiting on the network and the disk); each test that needs one skips with a warning without it:
#   - Debian's torch for the Python interop tests (Python's torch.load and torchvision reading
#     qrobust checkpoints, a torchrun launch);
#   - onnxruntime-node (npm) for the ONNX Runtime test.
optional_log="build/optional_test_packages.log"
(scripts/install_packages.sh python3-torch python3-torchvision || echo "the Python interop tests will be skipped"
 scripts/install_onnxruntime.sh || echo "the ONNX Runtime test will be skipped") > "$optional_log" 2>&1 &
installing=$!
cmake --build build -j"$(nproc)"
wait "$installing" || true
cat "$optional_log"
# The real-JPEG test compares the CIFAR-10 ImageFolder copy with its binary files (about a minute
# to prepare once; skipped with a warning where ../shared/data is absent).
if [[ ! -f data/cifar-10-batches-bin/test_batch.bin && -x "${QROBUST_SHARED_DATA:-../shared/data}/prepare_cifar10.sh" ]]; then
  scripts/prepare_data.sh
fi
cd build
ctest --output-on-failure -j"$(nproc)"
