// Markdown tables from scripts/check_onnx.sh's agreement.jsonl and speed.jsonl.
// Usage: node scripts/onnx_tables.js AGREEMENT.jsonl SPEED.jsonl
'use strict';
const fs = require('fs');

const lines = (file) => fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
const [agreementFile, speedFile] = process.argv.slice(2);
const fixed = (x, digits) => Number(x).toFixed(digits);
const fused = (graph) => Object.entries(graph.qdq_groups_fused || {}).map(([op, n]) => `${op} ${n}`).join(', ') || 'none';

const out = [];
out.push('### Agreement: sweep-bits (fake quantization) against ONNX Runtime (integer kernels)', '');
out.push('Calibration draw 0, test split. Disagreeing: images whose predicted class differs from qrobust\'s. ' +
         'int32 biases: the biases of quantized layers on the accumulator grid (input scale x weight scale), as integer ' +
         'kernels need them; ONNX Runtime fuses those layers (QDQ groups fused). float biases: as qrobust computes; ' +
         'the runtime then runs those layers in float on dequantized values.', '');
out.push('| run | weights | config | sweep-bits top-1 | ONNX Runtime, int32 biases | disagreeing | ONNX Runtime, float biases | disagreeing | QDQ groups fused (int32 biases) |');
out.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
const share = (n, total) => `${n} (${fixed(100 * n / total, 2)} %)`;
for (const r of lines(agreementFile)) {
  const config = r.act_bits === r.weight_bits ? `${r.weight_bits}/${r.act_bits}` : `w${r.weight_bits}a${r.act_bits}`;
  out.push(`| ${r.run} | ${r.granularity} | ${config} | ${fixed(r.sweep_bits, 2)} | ` +
           `${fixed(r.int32_bias.accuracy, 2)} (${fixed(r.int32_bias.accuracy - r.sweep_bits, 2)}) | ${share(r.int32_bias.disagreements, r.images)} | ` +
           `${fixed(r.float_bias.accuracy, 2)} (${fixed(r.float_bias.accuracy - r.sweep_bits, 2)}) | ${share(r.float_bias.disagreements, r.images)} | ` +
           `${fused(r.int32_bias.graph)} |`);
}
out.push('', '### Float export and speed', '');
out.push('Images/s on the test split at the same batch size and thread count; ONNX Runtime int8 is the per-channel w8a8 export.', '');
out.push('| run | threads | batch | qrobust eval top-1 | ONNX float top-1 | float max abs logit difference | qrobust eval img/s | ONNX float img/s | ONNX int8 img/s | int8 / float | int8 / qrobust |');
out.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const s of lines(speedFile)) {
  out.push(`| ${s.run} | ${s.threads} | ${s.batch} | ${fixed(s.qrobust_eval_accuracy, 2)} | ${fixed(s.onnx_float_accuracy, 2)} | ` +
           `${s.float_max_abs_logit_difference.toExponential(1)} | ${fixed(s.qrobust_eval_images_per_second, 0)} | ` +
           `${fixed(s.onnx_float_images_per_second, 0)} | ${fixed(s.onnx_int8_images_per_second, 0)} | ` +
           `${fixed(s.onnx_int8_images_per_second / s.onnx_float_images_per_second, 2)} | ` +
           `${fixed(s.onnx_int8_images_per_second / s.qrobust_eval_images_per_second, 2)} |`);
}
process.stdout.write(out.join('\n') + '\n');
