#!/usr/bin/env bash
# Builds qrobust (installing what is missing) and runs the test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
# The real-JPEG test compares the CIFAR-10 ImageFolder copy with its binary files (about a minute
# to prepare once; skipped with a warning where ../shared/data is absent).
if [[ ! -f data/cifar-10-batches-bin/test_batch.bin && -x "${QROBUST_SHARED_DATA:-../shared/data}/prepare_cifar10.sh" ]]; then
  scripts/prepare_data.sh
fi
cd build
ctest --output-on-failure -j"$(nproc)"
