#!/usr/bin/env bash
# The README's main command: builds qrobust if needed, then runs experiments/fashion_mnist_quick.yaml
# on Fashion-MNIST (Debian's dataset-fashion-mnist, no download): for each of three seeds, a small
# ResNet trained once, fine-tuned without and with the gradient-l1 penalty, each swept at
# 8/8 .. 4/4 bits with two calibration draws under two first/last-layer policies; prints the
# table (mean ± std over seeds, grad_l1 - none with its 95 % interval). About 8 minutes on 2 cores
# once built. Output: runs/fashion_mnist_quick/ (RESULTS=dir to change); a second call reuses
# what is complete.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x build/qrobust ]] || scripts/setup.sh
results="${RESULTS:-runs}"
build/qrobust run --config experiments/fashion_mnist_quick.yaml --results "$results"
cat "$results/fashion_mnist_quick/table.md"
