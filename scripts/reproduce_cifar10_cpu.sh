#!/usr/bin/env bash
# The paper's CIFAR-10 question on a 2-core CPU in about two hours (experiments/cifar10_resnet20_cpu.yaml):
# a ResNet-20 baseline (30 epochs, about 40 minutes), then none / grad-l1 (two lambdas, exact and
# finite-difference) / grad-l2 / DQ-Lipschitz / STE@4 fine-tuned from it for 3 epochs each and
# swept at 8/8 .. 3/3 with per-tensor and per-channel weights on the val and test splits.
# Needs CIFAR-10 in data/cifar-10-batches-bin (scripts/prepare_data.sh). Interrupt and re-run
# at will: complete parts are skipped, an interrupted training run resumes.
# Output: results/cifar10_resnet20_cpu/ (RESULTS=dir to change).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x build/qrobust ]] || scripts/setup.sh
[[ -f data/cifar-10-batches-bin/data_batch_1.bin ]] || scripts/prepare_data.sh
results="${RESULTS:-results}"
build/qrobust run --config experiments/cifar10_resnet20_cpu.yaml --results "$results" "$@"
cat "$results/cifar10_resnet20_cpu/table.md"
