#!/usr/bin/env bash
# Writes CIFAR-10 in the official binary layout to data/cifar-10-batches-bin, from the copy in
# ../shared/data (a JPEG re-encoding of CIFAR-10; see its README). With the official
# cifar-10-binary.tar.gz instead, unpack it into data/ and skip this script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shared="${QROBUST_SHARED_DATA:-../shared/data}"
if [[ ! -x "$shared/prepare_cifar10.sh" ]]; then
  echo "no CIFAR-10 copy at $shared (set QROBUST_SHARED_DATA, or unpack the official cifar-10-binary.tar.gz into data/)" >&2
  exit 1
fi
bash "$shared/prepare_cifar10.sh" data
