#!/usr/bin/env bash
# The paper's CIFAR-10 table (Alizadeh et al. 2020, Table 1): VGG-like and ResNet-18, each a
# 200-epoch baseline and then none, grad-l1, grad-l2, DQ-Lipschitz, kurtosis and STE@4 trained 15
# more epochs from it (experiments/cifar10_{vgg_like,resnet18}_paper.yaml), swept at 8/8, 6/6, 4/4.
# GPU-sized: per model 200 plain epochs + 90 fine-tuning epochs, 45 of them with a penalized
# step that costs 4-9x a plain one, i.e. about 470-700 plain-epoch equivalents per model.
# Expected: roughly 2-3 hours per model, 4-6 hours in all, on one V100/A100-class GPU (from the
# usual 15-20 s per plain ResNet-18 CIFAR-10 epoch there; not measured by this project yet);
# weeks on this project's 2-core CPU (use reproduce_cifar10_cpu.sh there).
# `build/qrobust run --config ... --dry-run` prints the estimate for the machine at hand.
# Needs CIFAR-10 in data/cifar-10-batches-bin (scripts/prepare_data.sh). Re-run to resume.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x build/qrobust ]] || scripts/setup.sh
[[ -f data/cifar-10-batches-bin/data_batch_1.bin ]] || scripts/prepare_data.sh
results="${RESULTS:-results}"
for experiment in cifar10_vgg_like_paper cifar10_resnet18_paper; do
  build/qrobust run --config "experiments/$experiment.yaml" --results "$results" "$@"
  cat "$results/$experiment/table.md"
done
