#!/usr/bin/env bash
# Installs ONNX Runtime's CPU build for node (onnxruntime-node 1.20.1, from npm) into
# build/onnxruntime (or $1), where scripts/check_onnx.sh and the tests find it. Its install
# script would fetch GPU binaries from outside, so it is skipped: the CPU binaries ship in the
# package. Needs node and npm (Debian: nodejs, npm).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
prefix="${1:-build/onnxruntime}"
version=1.20.1
if [[ -f "$prefix/node_modules/onnxruntime-node/package.json" ]] &&
   grep -q "\"version\": \"$version\"" "$prefix/node_modules/onnxruntime-node/package.json"; then
  exit 0
fi
command -v npm >/dev/null || { echo "npm is missing: install node and npm to run ONNX Runtime" >&2; exit 1; }
mkdir -p "$prefix"
npm install --prefix "$prefix" --ignore-scripts --no-audit --no-fund --loglevel=error "onnxruntime-node@$version" >/dev/null
echo "installed onnxruntime-node $version in $prefix"
