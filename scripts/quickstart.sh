#!/usr/bin/env bash
# The quick experiment: builds qrobust if needed, trains a small ResNet on Fashion-MNIST
# (Debian's dataset-fashion-mnist, no download) and evaluates it. A few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x build/qrobust ]] || scripts/setup.sh
run=runs/fashion_mnist_quick
if [[ -f "$run/checkpoint.pt" ]]; then
  build/qrobust train --out "$run" --resume
else
  build/qrobust train --config configs/fashion_mnist_quick.yaml --out "$run"
fi
build/qrobust eval --run "$run"
