#!/usr/bin/env bash
# Builds qrobust (installing what is missing) and runs the test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
cmake --build build -j"$(nproc)"
# The Python interop tests (Python's torch.load and torchvision reading qrobust checkpoints, a
# torchrun launch) need Debian's torch; where it cannot be installed they skip with a warning.
scripts/install_packages.sh python3-torch python3-torchvision || echo "the Python interop tests will be skipped"
# The ONNX Runtime test runs an export in onnxruntime-node (npm); without node or npm it skips.
scripts/install_onnxruntime.sh || echo "the ONNX Runtime test will be skipped"
# The real-JPEG test compares the CIFAR-10 ImageFolder copy with its binary files (about a minute
# to prepare once; skipped with a warning where ../shared/data is absent).
if [[ ! -f data/cifar-10-batches-bin/test_batch.bin && -x "${QROBUST_SHARED_DATA:-../shared/data}/prepare_cifar10.sh" ]]; then
  scripts/prepare_data.sh
fi
cd build
ctest --output-on-failure -j"$(nproc)"
