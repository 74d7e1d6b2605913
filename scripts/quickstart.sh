#!/usr/bin/env bash
# The README's main command: builds qrobust if needed, then runs experiments/fashion_mnist_quick.yaml
# on Fashion-MNIST (Debian's dataset-fashion-mnist, no download): for each of three seeds, a small
# ResNet trained for 3 epochs, then one epoch more without and with the gradient-l1 penalty, each
# swept at 8/8 .. 4/4 bits with two calibration draws, everything quantized with and without a
# PTQ recipe (empirical bias correction) and with first/last layer at 8 bits, and the 4-bit
# sensitivity of the unpenalized model. Prints each setting's table, which layer breaks the
# model at 4 bits, and where the files are. About 7 minutes on 2 cores once built. Output:
# runs/fashion_mnist_quick/ (RESULTS=dir to change); a second call reuses what is complete.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x build/qrobust ]] || scripts/setup.sh
results="${RESULTS:-runs}"
build/qrobust run --config experiments/fashion_mnist_quick.yaml --results "$results"
out="$results/fashion_mnist_quick"
echo
# Each quantizer setting's test table (mean ± std over seeds, grad_l1 - none with its interval).
awk '/^## / && /test split/ {show = 1} /^## / && !/test split/ {show = 0} show' "$out/table.md"
echo "Which layer breaks at 4 bits (sensitivity of none, everything quantized):"
grep '^- ' "$out/sensitivity.md"
echo
echo "Full tables: $out/table.md, $out/sensitivity.md; plots: $out/plot_*.svg"
