#!/usr/bin/env bash
# Writes the reference generated from the code: docs/reference/config.md (`qrobust config
# --defaults`) and docs/reference/cli.md (`qrobust --help` and every subcommand's help).
# tests/apps/test_docs.cpp runs this into a temporary folder and fails when the committed copies
# differ; after changing a key or a flag, run it and commit what it writes.
# Usage: scripts/update_reference.sh [BINARY (build/qrobust)] [OUT_DIR (docs/reference)]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
binary="${1:-build/qrobust}"
out="${2:-docs/reference}"
mkdir -p "$out"

{
  echo "# Configuration reference"
  echo
  echo "Every key of a run config (\`configs/*.yaml\`, the \`base\` of an experiment, \`--set\` overrides),"
  echo "with its default and meaning: the output of \`qrobust config --defaults\`, written by"
  echo "\`scripts/update_reference.sh\`. A test fails when this copy differs from what the binary prints."
  echo "Keys another setting brings in are commented out, with the setting they need."
  echo "\`qrobust config --config FILE [--set key=value]...\` validates a config and prints it resolved."
  echo "Experiment files are described in [experiments](../experiments.md)."
  echo
  echo '```yaml'
  "$binary" config --defaults
  echo '```'
} > "$out/config.md.tmp"
mv "$out/config.md.tmp" "$out/config.md"

# The subcommands, as the top-level help lists them.
subcommands=$("$binary" --help | awk '/^Subcommands:/ {listing = 1; next} listing && NF {print $1}')
{
  echo "# Command-line reference"
  echo
  echo "Every subcommand's \`--help\`, written by \`scripts/update_reference.sh\`; a test fails when this"
  echo "copy differs from what the binary prints. Exit codes: 0 success, 1 runtime failure (bad data"
  echo "file, diverged training, I/O), 2 usage or config error."
  echo
  echo "## qrobust"
  echo
  echo '```text'
  "$binary" --help
  echo '```'
  for sub in $subcommands; do
    echo
    echo "## qrobust $sub"
    echo
    echo '```text'
    "$binary" "$sub" --help
    echo '```'
  done
} > "$out/cli.md.tmp"
mv "$out/cli.md.tmp" "$out/cli.md"
echo "wrote $out/config.md and $out/cli.md"
