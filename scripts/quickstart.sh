#!/usr/bin/env bash
# The README's main command: builds qrobust if needed, then runs experiments/fashion_mnist_quick.yaml
# on Fashion-MNIST (Debian's dataset-fashion-mnist, no download): a small ResNet trained once,
# fine-tuned without and with the gradient-l1 penalty, each swept at 8/8 .. 4/4 bits; prints the
# table. About 3 minutes on 2 cores once built. Output: runs/fashion_mnist_quick/ (RESULTS=dir to
# change); a second call reuses what is complete.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x build/qrobust ]] || scripts/setup.sh
results="${RESULTS:-runs}"
build/qrobust run --config experiments/fashion_mnist_quick.yaml --results "$results"
cat "$results/fashion_mnist_quick/table.md"
