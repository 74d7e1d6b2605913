#!/usr/bin/env bash
# Checks qrobust's ONNX export against a real integer runtime (docs/deployment.md): for each
# trained run, exports 8/8, 6/6, 4/4 and w4a8, per-tensor and per-channel weights, with
# calibration draw 0, runs each in ONNX Runtime (CPU, all graph optimizations, so QDQ pairs become
# integer kernels) on the test split, and compares with `qrobust sweep-bits` at the same settings
# and draw: top-1 accuracy, and the images whose predicted class differs; each once with int32
# biases (what integer kernels need) and once with float biases (what qrobust computes). The float export's
# logits are compared with qrobust's. Then the speed of the real thing: ONNX Runtime int8 (w8a8)
# and float, and `qrobust eval`, in images/s at the same batch size and thread count.
# Usage: scripts/check_onnx.sh OUT_DIR RUN_DIR [RUN_DIR ...]
# Writes OUT_DIR/agreement.jsonl, OUT_DIR/speed.jsonl and OUT_DIR/check_onnx.md.
# Env: THREADS (default 2), BATCH (default 100), REPEAT (timed passes, best kept; default 3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
(($# >= 2)) || { echo "usage: scripts/check_onnx.sh OUT_DIR RUN_DIR [RUN_DIR ...]" >&2; exit 2; }
out="$1"
shift
threads="${THREADS:-2}"
batch="${BATCH:-100}"
repeat="${REPEAT:-3}"
[[ -x build/qrobust ]] || scripts/setup.sh
scripts/install_onnxruntime.sh
export NODE_PATH="$PWD/build/onnxruntime/node_modules"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
: > "$out/agreement.jsonl"
: > "$out/speed.jsonl"

qrobust() { build/qrobust "$@" --threads "$threads" 2> "$work/log" || { cat "$work/log" >&2; exit 1; }; }
runtime() { node scripts/onnx_runtime.js "$@" --batch "$batch" --threads "$threads"; }

for run in "$@"; do
  [[ -f "$run/checkpoint.pt" ]] || { echo "$run: no checkpoint.pt (train it first)" >&2; exit 1; }
  echo "== $run" >&2
  for granularity in per_tensor per_channel; do
    set_granularity=(--set "quant.weight_granularity=$granularity")
    qrobust sweep-bits --run "$run" --weight-bits 8,6,4,4 --act-bits 8,6,4,8 --pairs "${set_granularity[@]}" \
      --out "$work/sweep.json"
    for bits in 8/8 6/6 4/4 4/8; do
      w="${bits%/*}" a="${bits#*/}"
      for bias in int32 float; do
        qrobust export --run "$run" --weight-bits "$w" --act-bits "$a" "${set_granularity[@]}" --draw 0 --bias "$bias" \
          --out "$work/model.onnx" --reference "$work/reference"
        runtime "$work/model.onnx" "$work/reference" > "$work/runtime_$bias.json"
      done
      node -e '
        const [sweepFile, intFile, floatFile, run, granularity, w, a] = process.argv.slice(1);
        const row = require(sweepFile).rows.find((r) => r.weight_bits == w && r.act_bits == a);
        const rt = require(intFile), fl = require(floatFile);
        console.log(JSON.stringify({run, granularity, weight_bits: +w, act_bits: +a, sweep_bits: row.accuracy_draws[0],
          reference: rt.reference_accuracy, images: rt.images,
          int32_bias: {accuracy: rt.accuracy, disagreements: rt.disagreements, max_abs_logit_difference: rt.max_abs_logit_difference, graph: rt.graph},
          float_bias: {accuracy: fl.accuracy, disagreements: fl.disagreements, max_abs_logit_difference: fl.max_abs_logit_difference, graph: fl.graph}}));' \
        "$work/sweep.json" "$work/runtime_int32.json" "$work/runtime_float.json" "$run" "$granularity" "$w" "$a" >> "$out/agreement.jsonl"
      echo "  $granularity w${w}a${a}: $(tail -1 "$out/agreement.jsonl" | cut -c1-160)" >&2
    done
  done
  # Float: the export's logits against qrobust's; speed of float, int8 and qrobust eval.
  qrobust eval --run "$run" --set "data.eval_batch_size=$batch" > "$work/eval.json"
  for bits in 32/32 8/8; do
    w="${bits%/*}" a="${bits#*/}"
    qrobust export --run "$run" --weight-bits "$w" --act-bits "$a" --set quant.weight_granularity=per_channel --draw 0 \
      --out "$work/model.onnx" --reference "$work/reference"
    runtime "$work/model.onnx" "$work/reference" --repeat "$repeat" > "$work/runtime_$w.json"
  done
  node -e '
    const [evalFile, floatFile, intFile, run, threads] = process.argv.slice(1);
    const ev = require(evalFile), fl = require(floatFile), q = require(intFile);
    console.log(JSON.stringify({run, threads: +threads, batch: ev.batch, qrobust_eval_accuracy: ev.accuracy,
      onnx_float_accuracy: fl.accuracy, float_max_abs_logit_difference: fl.max_abs_logit_difference,
      float_disagreements: fl.disagreements, qrobust_eval_images_per_second: ev.images_per_second,
      onnx_float_images_per_second: fl.images_per_second, onnx_int8_images_per_second: q.images_per_second,
      int8_graph: q.graph}));' \
    "$work/eval.json" "$work/runtime_32.json" "$work/runtime_8.json" "$run" "$threads" >> "$out/speed.jsonl"
  echo "  speed: $(tail -1 "$out/speed.jsonl" | cut -c1-200)" >&2
done
node scripts/onnx_tables.js "$out/agreement.jsonl" "$out/speed.jsonl" > "$out/check_onnx.md"
echo "wrote $out/check_onnx.md" >&2
