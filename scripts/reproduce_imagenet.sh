#!/usr/bin/env bash
# The paper's ImageNet table: torchvision's pretrained ResNet-18, swept as it is and after
# fine-tuning without and with the gradient-l1 penalty (lambda 0.05), at 8/8, 6/6, 4/4, top-1
# and top-5 (experiments/imagenet_resnet18_paper.yaml).
# Needs:
#   data/imagenet/train/<wnid>/*.JPEG and data/imagenet/val/<wnid>/*.JPEG (the usual layout;
#     the validation images sorted into class folders); IMAGENET=/path/to/it links it there;
#   torchvision's weights, WEIGHTS=/path/to/resnet18-f37072fd.pth (from
#     https://download.pytorch.org/models/resnet18-f37072fd.pth; nothing is downloaded here).
# GPU-sized: 20 fine-tuning epochs over 1.28 M images, half of them with a penalized step that
# costs several plain ones; days on a CPU. `build/qrobust run --config ... --dry-run` prints the
# estimate for the machine at hand. Re-run to resume.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x build/qrobust ]] || scripts/setup.sh
weights="${WEIGHTS:-data/imagenet/resnet18-f37072fd.pth}"
results="${RESULTS:-results}"
if [[ -n "${IMAGENET:-}" && ! -e data/imagenet ]]; then
  mkdir -p data && ln -s "$(realpath "$IMAGENET")" data/imagenet
fi
for folder in train val; do
  [[ -d "data/imagenet/$folder" ]] || { echo "no data/imagenet/$folder (set IMAGENET)" >&2; exit 1; }
done
[[ -f "$weights" ]] || { echo "no torchvision weights at $weights (set WEIGHTS)" >&2; exit 1; }

checkpoint=data/imagenet/resnet18_torchvision.pt
[[ -f "$checkpoint" ]] || build/qrobust import-torchvision "$weights" --model resnet18 --out "$checkpoint"

mkdir -p "$results/imagenet_resnet18_pretrained"
build/qrobust sweep-bits --config configs/imagenet_resnet18_gradl1.yaml --checkpoint "$checkpoint" \
  --weight-bits 8,6,4 --act-bits 8,6,4 --pairs --out "$results/imagenet_resnet18_pretrained/sweep.json"
cat "$results/imagenet_resnet18_pretrained/sweep.md"

build/qrobust run --config experiments/imagenet_resnet18_paper.yaml --results "$results" "$@"
cat "$results/imagenet_resnet18_paper/table.md"
