#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and Python PyTorch (CUDA): builds qrobust against that
# PyTorch's LibTorch, checks that a grad-l1 training step on CUDA matches the CPU step
# (tests/gpu/test_cuda.cpp, relative error < 1e-4), and prints plain vs penalized training
# img/s for ResNet-20 and ResNet-18 (CIFAR-shaped batches of 128).
# Usage: scripts/gpu_check.sh [DEB_DIR (default gpu-debs)]
# The other libraries come from Debian .deb files (scripts/fetch_gpu_debs.sh downloads them
# where a registry is reachable), unpacked with `dpkg -x` into build-gpu/prefix: no root needed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
debs="${1:-gpu-debs}"
python="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

torch_prefix=$("$python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
cxx11_abi=$("$python" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
"$python" -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda, "GPU", torch.cuda.get_device_name(0))'
if [[ "$cxx11_abi" != 1 ]]; then
  echo "this PyTorch was built with the pre-C++11 string ABI; Debian's yaml-cpp and spdlog use the new one." >&2
  echo "Use a PyTorch built with _GLIBCXX_USE_CXX11_ABI=1 (e.g. the cxx11-abi LibTorch zip) via PYTHON or CMAKE_PREFIX_PATH." >&2
  exit 1
fi

prefix="$PWD/build-gpu/prefix"
mkdir -p "$prefix"
for deb in "$debs"/*.deb; do dpkg -x "$deb" "$prefix"; done
multiarch="$prefix/usr/lib/x86_64-linux-gnu"
export LD_LIBRARY_PATH="$multiarch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PKG_CONFIG_PATH="$multiarch/pkgconfig:$prefix/usr/share/pkgconfig"
# .pc files name /usr as their prefix; point them at the unpacked tree.
export PKG_CONFIG_SYSROOT_DIR="$prefix"

cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DQROBUST_PCH=OFF \
  -DCMAKE_PREFIX_PATH="$torch_prefix;$prefix/usr;$multiarch/cmake" >/dev/null
cmake --build build-gpu -j"$(nproc)"

echo "== CUDA step vs CPU step"
build-gpu/qrobust_tests "[cuda]"

echo "== training throughput on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
for model in resnet20 resnet18_cifar; do
  build-gpu/qrobust bench --device cuda --model "$model" --batch 128 --steps 30 --regularizer grad_l1 |
    "$python" -c 'import json, sys; r = json.load(sys.stdin); print(json.dumps({k: r[k] for k in r if k != "provenance"}, indent=1))'
done
