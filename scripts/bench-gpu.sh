#!/usr/bin/env bash
# bench-gpu.sh: ONNX Runtime CPU vs CUDA throughput (the target of
# `task bench:gpu`). Self-contained: fetches the libraries it needs, builds
# cmd/ortbench, and runs it for MLPs of width 64 and 1024:
# scoring at batch sizes 1, 64 and 4096, and the MLP learner's training step
# (forward, loss, backward and Adam update in one graph run,
# ortengine.NewMLP) at batch sizes 256 and 4096. Extra arguments go to
# ortbench (see `go run ./cmd/ortbench -h`), e.g.
# -duration 2s.
#
# The CUDA route: ONNX Runtime's CUDA execution provider is two shared
# libraries that must sit beside the core library and match its exact
# version. The reachable build is the npm package
# com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 (ORT 1.29.0, CUDA 13),
# paired with onnxruntime-node 1.29.0's core library; `scripts/setup-ort.sh
# --cuda` puts the three files into one cache folder. The provider also
# needs the CUDA 13 runtime (libcudart.so.13, libcublas.so.13,
# libcublasLt.so.13, libcurand.so.10) and the driver's libcuda.so.1 on
# LD_LIBRARY_PATH; cuDNN is not needed by this build.
#
# On a machine without an NVIDIA GPU (nvidia-smi absent or failing) the
# script skips the 180 MB CUDA download, measures the CPU, and prints that
# the CUDA figures are unmeasured, with the engine's error. It exits non-zero
# only when the CPU measurement itself fails. ORT_LIB, when set, is used as
# is.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v nvidia-smi >/dev/null 2>&1 && gpus=$(nvidia-smi -L 2>/dev/null) && [ -n "$gpus" ]; then
	echo "bench-gpu: GPUs found:"
	echo "$gpus" | sed 's/^/  /'
	have_gpu=1
else
	echo "bench-gpu: no NVIDIA GPU found (nvidia-smi absent or failing): the CUDA figures will be unmeasured"
	have_gpu=0
fi

if [ -n "${ORT_LIB:-}" ]; then
	lib=$ORT_LIB
	echo "bench-gpu: using ORT_LIB=$lib"
elif [ "$have_gpu" = 1 ]; then
	lib=$(scripts/setup-ort.sh --cuda)
else
	lib=$(scripts/setup-ort.sh)
fi

if [ "$have_gpu" = 1 ]; then
	for so in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcuda.so.1; do
		found=""
		for dir in ${LD_LIBRARY_PATH//:/ }; do
			[ -e "$dir/$so" ] && found="$dir/$so" && break
		done
		[ -z "$found" ] && found=$(ldconfig -p 2>/dev/null | awk -v so="$so" '$1 == so { print $NF; exit }')
		echo "bench-gpu: $so: ${found:-NOT FOUND (add its folder to LD_LIBRARY_PATH)}"
	done
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "bench-gpu: building cmd/ortbench"
go build -o "$work/ortbench" ./cmd/ortbench
echo
ORT_LIB="$lib" "$work/ortbench" -widths 64,1024 -batches 1,64,4096 -train-batches 256,4096 -providers cpu,cuda "$@"
if [ "$have_gpu" = 0 ]; then
	echo
	echo "bench-gpu: CUDA scoring and training-step figures: UNMEASURED (no NVIDIA GPU on this machine)"
fi
