#!/usr/bin/env bash
# Runs `qrobust bench` and the same ResNet-20 step in Python PyTorch back to back, and prints the
# C++/Python throughput ratios. Needs Debian's python3-torch (/usr/bin/python3).
# Usage: scripts/bench_compare_pytorch.sh [steps]   (target: train ratio >= 1.0)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps="${1:-20}"
cpp=$(build/qrobust bench --model resnet20 --batch 128 --steps "$steps")
py=$(/usr/bin/python3 scripts/bench_pytorch_reference.py --batch 128 --steps "$steps")
/usr/bin/python3 - "$cpp" "$py" <<'PY'
import json, sys
cpp, py = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for key in ("train_images_per_second", "inference_images_per_second"):
    print(f"{key}: qrobust {cpp[key]:.1f}  python {py[key]:.1f}  ratio {cpp[key] / py[key]:.3f}")
print(f"threads: qrobust {cpp['threads']}  python {py['threads']}; blas: {cpp['blas']}")
PY
