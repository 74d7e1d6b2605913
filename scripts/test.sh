#!/usr/bin/env bash
# Builds qrobust (installing what is missing) and runs the test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
cd build
ctest --output-on-failure -j"$(nproc)"
