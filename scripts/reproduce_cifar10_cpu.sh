#!/usr/bin/env bash
# The paper's CIFAR-10 question on a 2-core CPU, seeded and late-branching (docs/results.md, "CIFAR-10:
# does the claim hold?"), for ResNet-20 and the VGG-like at width 32:
#   1. experiments/cifar10_{resnet20,vgg_like}_lambda.yaml: lambda of grad-l1 on the val split,
#      seed 1 (about an hour each);
#   2. experiments/cifar10_{resnet20,vgg_like}_branch.yaml: 3 seeds of none, grad-l1 (both
#      terms, and the weight term alone) and STE@4, each continuing epochs 10..12 of the seed's
#      baseline schedule, swept with 3 calibration draws under 4 quantizer settings, plus
#      per-layer sensitivity of none and grad-l1 (see `--dry-run` for the hours);
#   3. experiments/cifar10_{resnet20,vgg_like}_alternatives.yaml: the same for none, grad-l2,
#      DQ-Lipschitz and kurtosis, on trunks of their own;
#   4. experiments/cifar10_resnet20_amortized.yaml: exact grad-l1 against its amortized
#      versions (every 4th step, 16 of 128 images, finite differences), 3 seeds.
#   5. experiments/cifar10_{resnet20,vgg_like}_strong_ptq.yaml: robust training under strong PTQ:
#      none, grad-l1, kurtosis and STE@4 on trunks of their own, 3 seeds, swept under RTN, CLE+BC,
#      AdaRound and all three with 3 calibration draws, plus mixed-precision curves (about 14
#      hours for both models; `--dry-run` gives the estimate).
# A seed's runs must finish on the machine that trained its trunk: a trunk trained again on
# another machine has other bits, and the variants that grew from the old one train again.
# Needs CIFAR-10 in data/cifar-10-batches-bin (scripts/prepare_data.sh). Interrupt and re-run
# at will: complete parts are skipped, an interrupted training run resumes, and committed
# results are reused without their checkpoints. Extra arguments go to every `qrobust run`
# (e.g. --dry-run). MODELS="resnet20" limits the models. Output: results/ (RESULTS=dir).
# The first, single-seed version of this experiment: experiments/cifar10_resnet20_cpu.yaml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x build/qrobust ]] || scripts/setup.sh
[[ -f data/cifar-10-batches-bin/data_batch_1.bin ]] || scripts/prepare_data.sh
results="${RESULTS:-results}"
for model in ${MODELS:-resnet20 vgg_like}; do
  for stage in lambda branch alternatives amortized strong_ptq; do
    file="experiments/cifar10_${model}_${stage}.yaml"
    [[ -f "$file" ]] || continue  # the amortized comparison is ResNet-20's only
    build/qrobust run --config "$file" --results "$results" "$@"
  done
done
