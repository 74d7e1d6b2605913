#!/usr/bin/env bash
# Downloads (here, from Debian's package registry) the .deb files of the libraries qrobust
# builds against besides LibTorch, into gpu-debs/, for a GPU machine that has no package
# registry: scripts/gpu_check.sh unpacks them there with `dpkg -x`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p gpu-debs
cd gpu-debs
apt-get download libyaml-cpp-dev libyaml-cpp0.7 libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 libcli11-dev \
  nlohmann-json3-dev catch2 libturbojpeg0-dev libturbojpeg0 libjpeg62-turbo-dev libjpeg62-turbo
ls -1 "$PWD"
