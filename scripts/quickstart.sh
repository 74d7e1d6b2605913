#!/usr/bin/env bash
# The quick experiment: builds qrobust if needed, trains a small ResNet on Fashion-MNIST
# (Debian's dataset-fashion-mnist, no download), evaluates it and sweeps post-training
# quantization at 8/8, 6/6 and 4/4 bits. About a minute on 2 cores once built.
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
build/qrobust sweep-bits --run "$run" --weight-bits 32,8,6,4 --act-bits 32,8,6,4 --pairs
cat "$run/sweep.md"
