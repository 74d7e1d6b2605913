#!/usr/bin/env bash
# Fuzzes every file reader qrobust has with libFuzzer, under AddressSanitizer and UBSan, for
# SECONDS each (default 60): the unpickler, the checkpoint loader (zip, pickle, tensors), the IDX
# and CIFAR-10 readers, the config loader, the JPEG decoder and the bit plan reader (fuzz/). The seed corpora are files
# the tests make (tests tagged [corpus], run with QROBUST_FUZZ_CORPUS). Prints executions, coverage
# and crashes per harness; exits 1 if any harness found a crash, leaving the input under
# build-fuzz/artifacts/<harness>/ (make it a regression test, fix, rerun).
#   scripts/fuzz.sh 600                   # docs/reliability.md's 10-minute run
#   HARNESSES="pickle checkpoint" scripts/fuzz.sh 30
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-60}"
harnesses=(${HARNESSES:-pickle checkpoint idx cifar10 config jpeg bit_plan})
[[ -x build/qrobust_tests ]] || scripts/setup.sh
scripts/install_packages.sh clang
cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQROBUST_FUZZ=ON -DCMAKE_UNITY_BUILD=OFF > /dev/null
cmake --build build-fuzz -j"$(nproc)" > build-fuzz/build.log 2>&1 || { tail -30 build-fuzz/build.log; exit 1; }

corpus="$PWD/build-fuzz/corpus"
QROBUST_FUZZ_CORPUS="$corpus" build/qrobust_tests "[corpus]" > /dev/null
# LibTorch's own leaks at exit are not the readers' business.
export ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:${UBSAN_OPTIONS:-}"
crashed=()
printf '%-11s %12s %8s %8s %8s  %s\n' harness executions exec/s coverage features crashes
for harness in "${harnesses[@]}"; do
  rm -rf "build-fuzz/artifacts/$harness"  # the inputs of an earlier run's crashes (regression tests by now)
  mkdir -p "$corpus/$harness" "build-fuzz/artifacts/$harness"
  log="build-fuzz/fuzz_$harness.log"
  status=0
  build-fuzz/fuzz_"$harness" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="build-fuzz/artifacts/$harness/" "$corpus/$harness" > "$log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  rate=$(grep -o 'exec/s: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
  coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
  features=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
  found=$(find "build-fuzz/artifacts/$harness" -type f | wc -l)
  printf '%-11s %12s %8s %8s %8s  %s\n' "$harness" "$runs" "$rate" "$coverage" "$features" "$found"
  if [[ $status -ne 0 || $found -ne 0 ]]; then
    crashed+=("$harness")
    grep -m1 -E 'ERROR|SUMMARY|runtime error|deadly signal|Test unit written' "$log" || true
  fi
done
if ((${#crashed[@]})); then
  echo "crashes in: ${crashed[*]} (logs build-fuzz/fuzz_<harness>.log, inputs build-fuzz/artifacts/)" >&2
  exit 1
fi
