#!/usr/bin/env bash
# setup-ort.sh: fetch the ONNX Runtime shared library that driftline's ONNX
# engine (models/ortengine) loads, into a cache folder, and print its path.
#
# Usage:
#   scripts/setup-ort.sh           CPU core library (what tests and the demo need)
#   scripts/setup-ort.sh --cuda    core library plus the CUDA execution provider
#                                  libraries beside it, in a separate folder
#
# Where it comes from: `npm pack onnxruntime-node@$ORT_VERSION` (the tarball
# only; the package's install script is never run, it downloads from a host
# that may not be reachable), then `tar` extracts
# package/bin/napi-v*/linux/x64/libonnxruntime.so.1. With --cuda, the providers
# come from `npm pack com.github.asus4.onnxruntime.linux-x64-gpu@$CUDA_PKG_VERSION`,
# built for the same ONNX Runtime version and CUDA 13. Every file is checked
# against a pinned sha256.
#
# Cache: ${DRIFTLINE_CACHE:-$HOME/.cache/driftline}/onnxruntime/<version>/ (CPU)
# and .../onnxruntime/<version>-cuda/ (CUDA). A second run finds the verified
# files there and downloads nothing.
#
# Output: the library's absolute path on stdout, and nothing else; progress and
# errors go to stderr. Set ORT_LIB to that path to override the engine's
# default lookup (the engine finds the CPU cache path by itself).
#
# Keep ORT_VERSION in step with models/ortengine.DefaultVersion; a test there
# checks it.
set -euo pipefail

ORT_VERSION=1.29.0
ORT_CORE_SHA256=89688f5cf51c7e31befbb7b9101bc027799009b18d1baa9a5b1146a72e69538d
CUDA_PKG=com.github.asus4.onnxruntime.linux-x64-gpu
CUDA_PKG_VERSION=0.4.9
CUDA_PROVIDER_SHA256=56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037
SHARED_PROVIDER_SHA256=c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772

die() {
	echo "setup-ort: $*" >&2
	exit 1
}

want_cuda=0
case "${1:-}" in
"") ;;
--cuda) want_cuda=1 ;;
-h | --help)
	sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
*) die "unknown argument ${1} (use --cuda or nothing)" ;;
esac

[ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] ||
	die "only linux/x86_64 is supported here ($(uname -s)/$(uname -m)); set ORT_LIB to your own libonnxruntime build"

cache_root="${DRIFTLINE_CACHE:-$HOME/.cache/driftline}/onnxruntime"

# sha_ok FILE SHA256: the file exists and has that digest.
sha_ok() {
	[ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# npm_pack SPEC DIR: download the package tarball of SPEC into DIR and set
# packed to the tarball's path.
npm_pack() {
	command -v npm >/dev/null 2>&1 ||
		die "npm is not installed; install Node.js/npm (e.g. apt-get install npm), or set ORT_LIB to an existing libonnxruntime.so (>= 1.24)"
	echo "setup-ort: npm pack $1 (the install script is not run)" >&2
	local name
	if ! name=$(cd "$2" && npm pack "$1" --silent 2>"$2/npm.err"); then
		cat "$2/npm.err" >&2
		die "npm pack $1 failed: the npm registry is unavailable or the package is missing; fix network/registry access, or set ORT_LIB to an existing libonnxruntime.so (>= 1.24)"
	fi
	packed="$2/$(echo "$name" | tail -n1)"
}

# extract TARBALL PATTERN DEST SHA256: extract the one member matching
# PATTERN into DEST (atomically) and verify its digest.
extract() {
	local tarball=$1 pattern=$2 dest=$3 sha=$4 tmpdir
	tmpdir=$(dirname "$tarball")/x
	mkdir -p "$tmpdir"
	tar -xzf "$tarball" -C "$tmpdir" --wildcards "$pattern" ||
		die "$(basename "$tarball") has no member $pattern"
	local found
	found=$(find "$tmpdir" -type f -path "*${pattern##*/}" | head -n1)
	[ -n "$found" ] || die "$(basename "$tarball") has no member $pattern"
	sha_ok "$found" "$sha" ||
		die "sha256 mismatch for $pattern in $(basename "$tarball"): got $(sha256sum "$found" | cut -d' ' -f1), want $sha"
	mkdir -p "$(dirname "$dest")"
	mv -f "$found" "$dest.tmp.$$"
	mv -f "$dest.tmp.$$" "$dest"
}

packed=
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fetch_core DEST: ensure the verified CPU core library is at DEST.
fetch_core() {
	sha_ok "$1" "$ORT_CORE_SHA256" && return 0
	mkdir -p "$work/core"
	npm_pack "onnxruntime-node@$ORT_VERSION" "$work/core"
	extract "$packed" \
		'package/bin/napi-v*/linux/x64/libonnxruntime.so.1' "$1" "$ORT_CORE_SHA256"
}

cpu_lib="$cache_root/$ORT_VERSION/libonnxruntime.so.1"
fetch_core "$cpu_lib"
if [ "$want_cuda" = 0 ]; then
	echo "setup-ort: onnxruntime $ORT_VERSION (CPU) ready" >&2
	echo "$cpu_lib"
	exit 0
fi

# The CUDA provider is loaded from the core library's folder, so the CUDA
# folder holds its own copy of the core library.
cuda_dir="$cache_root/$ORT_VERSION-cuda"
if ! sha_ok "$cuda_dir/libonnxruntime.so.1" "$ORT_CORE_SHA256"; then
	mkdir -p "$cuda_dir"
	cp -f "$cpu_lib" "$cuda_dir/libonnxruntime.so.1.tmp.$$"
	mv -f "$cuda_dir/libonnxruntime.so.1.tmp.$$" "$cuda_dir/libonnxruntime.so.1"
fi
if ! sha_ok "$cuda_dir/libonnxruntime_providers_cuda.so" "$CUDA_PROVIDER_SHA256" ||
	! sha_ok "$cuda_dir/libonnxruntime_providers_shared.so" "$SHARED_PROVIDER_SHA256"; then
	mkdir -p "$work/cuda"
	npm_pack "$CUDA_PKG@$CUDA_PKG_VERSION" "$work/cuda"
	extract "$packed" 'package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so' \
		"$cuda_dir/libonnxruntime_providers_cuda.so" "$CUDA_PROVIDER_SHA256"
	extract "$packed" 'package/Plugins/Linux/x64/libonnxruntime_providers_shared.so' \
		"$cuda_dir/libonnxruntime_providers_shared.so" "$SHARED_PROVIDER_SHA256"
fi
echo "setup-ort: onnxruntime $ORT_VERSION with the CUDA 13 provider ready;" \
	"it also needs libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10 and libcuda.so.1 on LD_LIBRARY_PATH" >&2
echo "$cuda_dir/libonnxruntime.so.1"
