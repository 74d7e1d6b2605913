// Runs an exported model (qrobust export --out MODEL.onnx --reference REF) in ONNX Runtime and
// compares it with qrobust's own logits for the same images. Prints one JSON object:
//   images, accuracy (runtime), reference_accuracy (qrobust), disagreements (images whose
//   predicted class differs), max_abs_logit_difference, images_per_second (the best of --repeat
//   timed passes, same batch size), and graph: what ONNX Runtime's optimizer made of the QDQ
//   pairs. onnxruntime-node cannot profile or save the optimized model, so a child process opens
//   the model with logSeverityLevel 0 and its log is read: each "Matched <op>" of the first
//   QDQSelectorActionTransformer pass is a DQ -> op -> Q group turned into an integer kernel
//   (Conv -> QLinearConv, Gemm -> QGemm, MaxPool and Slice run on int8 directly), and
//   "Number of nodes" is the size of the graph that ran.
// Usage: node scripts/onnx_runtime.js MODEL.onnx REF [--batch N] [--limit N] [--threads N]
//                                     [--optimization all|extended|basic|disabled] [--repeat N]
// onnxruntime-node is found through NODE_PATH (scripts/install_onnxruntime.sh installs it).
'use strict';
const fs = require('fs');
const childProcess = require('child_process');
const ort = require('onnxruntime-node');

function fail(message) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = {batch: 100, limit: 0, threads: 0, optimization: 'all', repeat: 1, positional: []};
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      args.positional.push(a);
      continue;
    }
    const key = a.slice(2);
    if (!(key in args) || key === 'positional') fail(`unknown option ${a}`);
    const value = argv[++i];
    if (value === undefined) fail(`${a} needs a value`);
    args[key] = key === 'optimization' ? value : Number(value);
    if (key !== 'optimization' && !(Number.isInteger(args[key]) && args[key] >= 0)) fail(`${a}: not a count: ${value}`);
  }
  if (args.positional.length !== 2) fail('usage: node scripts/onnx_runtime.js MODEL.onnx REF [options]');
  if (!['all', 'extended', 'basic', 'disabled'].includes(args.optimization)) fail(`--optimization: ${args.optimization}`);
  if (args.batch < 1 || args.repeat < 1) fail('--batch and --repeat must be positive');
  return args;
}

function readTyped(file, Type) {
  const bytes = fs.readFileSync(file);
  return new Type(bytes.buffer, bytes.byteOffset, bytes.byteLength / Type.BYTES_PER_ELEMENT);
}

function argmax(values, offset, count) {
  let best = 0;
  for (let k = 1; k < count; ++k)
    if (values[offset + k] > values[offset + best]) best = k;
  return best;
}

// What the optimizer did to the graph, from the log of a child process that opens it.
function graphOf(modelPath, optimization) {
  const child = childProcess.spawnSync(process.execPath, [__filename, '--probe', modelPath, optimization],
                                       {encoding: 'utf8', maxBuffer: 1 << 28});
  if (child.status !== 0) fail(`ONNX Runtime cannot open ${modelPath}: ${(child.stderr || '').split('\n').slice(-3).join(' ')}`);
  const fused = {};
  let transformerRan = false, nodes = null;
  for (const line of child.stderr.split('\n')) {
    const matched = line.match(/MatchAndProcess\] Matched (\S+)/);
    if (matched && !transformerRan) fused[matched[1]] = (fused[matched[1]] || 0) + 1;
    if (line.includes('GraphTransformer QDQSelectorActionTransformer modified')) transformerRan = true;
    const count = line.match(/Number of nodes: (\d+)/);
    if (count) nodes = Number(count[1]);
  }
  return {qdq_groups_fused: fused, nodes_after_optimization: nodes};
}

async function probe(modelPath, optimization) {
  const session = await ort.InferenceSession.create(modelPath, {graphOptimizationLevel: optimization, logSeverityLevel: 0});
  await session.release();
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const [modelPath, reference] = args.positional;
  const about = JSON.parse(fs.readFileSync(`${reference}.json`, 'utf8'));
  const [channels, height, width] = about.image_shape;
  const classes = about.classes;
  const total = args.limit > 0 ? Math.min(args.limit, about.images) : about.images;
  const imageSize = channels * height * width;
  const images = readTyped(about.files.images, Float32Array);
  const labels = readTyped(about.files.labels, Int32Array);
  const expected = readTyped(about.files.logits, Float32Array);
  if (images.length !== about.images * imageSize || labels.length !== about.images || expected.length !== about.images * classes)
    fail(`${reference}: the files do not match ${reference}.json`);

  const options = {graphOptimizationLevel: args.optimization, executionMode: 'sequential'};
  if (args.threads > 0) options.intraOpNumThreads = args.threads;
  const session = await ort.InferenceSession.create(modelPath, options);
  const run = async (start, n) => {
    const input = new ort.Tensor('float32', images.subarray(start * imageSize, (start + n) * imageSize), [n, channels, height, width]);
    return (await session.run({images: input})).logits.data;
  };
  // One pass for the numbers, then --repeat timed passes.
  const logits = new Float32Array(total * classes);
  for (let start = 0; start < total; start += args.batch) logits.set(await run(start, Math.min(args.batch, total - start)), start * classes);
  let seconds = Infinity;
  for (let r = 0; r < args.repeat; ++r) {
    const begin = process.hrtime.bigint();
    for (let start = 0; start < total; start += args.batch) await run(start, Math.min(args.batch, total - start));
    seconds = Math.min(seconds, Number(process.hrtime.bigint() - begin) / 1e9);
  }
  await session.release();

  let correct = 0, referenceCorrect = 0, disagreements = 0, maxDiff = 0;
  for (let i = 0; i < total; ++i) {
    const mine = argmax(logits, i * classes, classes), theirs = argmax(expected, i * classes, classes);
    if (mine === labels[i]) ++correct;
    if (theirs === labels[i]) ++referenceCorrect;
    if (mine !== theirs) ++disagreements;
    for (let k = 0; k < classes; ++k) maxDiff = Math.max(maxDiff, Math.abs(logits[i * classes + k] - expected[i * classes + k]));
  }
  process.stdout.write(JSON.stringify({
    model: modelPath, images: total, optimization: args.optimization, batch: args.batch,
    accuracy: 100 * correct / total, reference_accuracy: 100 * referenceCorrect / total,
    disagreements, disagreement_share: disagreements / total, max_abs_logit_difference: maxDiff,
    images_per_second: total / seconds, threads: args.threads || 'default', graph: graphOf(modelPath, args.optimization),
  }) + '\n');
}

if (process.argv[2] === '--probe') {
  probe(process.argv[3], process.argv[4]).catch((e) => fail(e.message.split('\n')[0]));
} else {
  main().catch((e) => fail(e.message.split('\n')[0]));
}
