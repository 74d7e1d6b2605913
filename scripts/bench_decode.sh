#!/usr/bin/env bash
# JPEG decoding + augmentation at 224 px, one core: qrobust's ImageFolder pipeline and
# torchvision/PIL's on the same ImageNet-sized JPEGs, back to back, with their ratios.
# Usage: scripts/bench_decode.sh [FOLDER (default /tmp/qrobust_jpeg_bench)] [IMAGES (default 512)]
# Needs build/qrobust and Debian's python3-torchvision + python3-pil (for /usr/bin/python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
folder="${1:-/tmp/qrobust_jpeg_bench}"
images="${2:-512}"
ours=$(build/qrobust bench --decode "$folder" --images "$images")
theirs=$(/usr/bin/python3 scripts/bench_decode_reference.py "$folder")
echo "$ours"
echo "$theirs"
/usr/bin/python3 - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{ours['images']} JPEGs, mean {ours['mean_file_bytes'] / 1000:.0f} kB, 1 thread each")
for name in ("train", "eval"):
    key = name + "_transform_images_per_second"
    print(f"{name:5s}: qrobust {ours[key]:7.1f} img/s, torchvision/PIL {theirs[key]:7.1f} img/s, ratio {ours[key] / theirs[key]:.2f}x (target >= 1.5x)")
PY
