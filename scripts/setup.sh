#!/usr/bin/env bash
# Installs what qrobust needs from Debian's packages (when run as root) and builds build/qrobust
# (only the binary: scripts/test.sh builds the test suite).
# Usage: scripts/setup.sh [extra cmake arguments, e.g. -DCMAKE_PREFIX_PATH=/opt/libtorch]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(g++ cmake make git pkg-config libtorch-dev libcli11-dev libyaml-cpp-dev libspdlog-dev nlohmann-json3-dev
          catch2 zlib1g-dev libturbojpeg0-dev libjpeg62-turbo-dev libgloo-dev dataset-fashion-mnist
          # OpenBLAS instead of Debian's reference BLAS: double backprop is 2.3x faster with it.
          libopenblas0-openmp
          # Plots of experiment tables (qrobust run).
          gnuplot-nox
          # ONNX export (qrobust export): the ONNX protobuf and its checker.
          libonnx-dev)
scripts/install_packages.sh "${packages[@]}"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build --target qrobust -j"$(nproc)"
echo "built build/qrobust"
