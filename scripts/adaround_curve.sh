#!/usr/bin/env bash
# AdaRound's accuracy against its iteration count on one trained run: w4a32 and w3a32, per-tensor
# weights, one calibration draw, for each count in ITERATIONS. Writes OUT/it_N.json (+ .md, .csv)
# per count and OUT/curve.md, the table the default iteration count is chosen from.
# Usage: scripts/adaround_curve.sh RUN_DIR OUT [ITERATIONS, default "250 500 1000 2000 4000"]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
run=${1:?usage: scripts/adaround_curve.sh RUN_DIR OUT [ITERATIONS]}
out=${2:?usage: scripts/adaround_curve.sh RUN_DIR OUT [ITERATIONS]}
counts=${3:-250 500 1000 2000 4000}
qrobust=${QROBUST:-build/qrobust}
mkdir -p "$out"
for n in $counts; do
  [[ -f "$out/it_$n.json" ]] && continue  # resumable: a finished count is kept
  "$qrobust" sweep-bits --run "$run" --weight-bits 4,3 --act-bits 32,32 --pairs --calibration-draws 1 \
    --set quant.weight_granularity=per_tensor --set quant.rounding=adaround --set "quant.adaround.iterations=$n" \
    --out "$out/it_$n.json"
done
python3 - "$run" "$out" $counts <<'PY'
import json, pathlib, sys
run, out, counts = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3:]
lines = ["| iterations | w4a32 | w3a32 | AdaRound seconds (both bit-widths) |", "| --- | --- | --- | --- |"]
for n in counts:
    doc = json.loads((out / f"it_{n}.json").read_text())
    rows = {r["config"]: r["accuracy"] for r in doc["rows"]}
    cost = doc["header"]["recipe_cost"]
    lines.append(f"| {n} | {rows['w4afp']:.2f} | {rows['w3afp']:.2f} | {cost['adaround_seconds']:.0f} |")
fp32 = json.loads((out / f"it_{counts[0]}.json").read_text())["rows"][0]["accuracy"]
command = f"scripts/adaround_curve.sh {run} {out} \"{' '.join(counts)}\""
text = f"Float: {fp32:.2f} %. Command: `{command}`\n\n" + "\n".join(lines) + "\n"
(out / "curve.md").write_text(text)
print(text)
PY
