#!/usr/bin/env bash
# setup-textmodel.sh: build the text-model test fixtures (a WordPiece
# tokenizer.json trained on models/tokenizer/testdata/corpus.jsonl, two tiny
# BERT-shaped ONNX models with seeded random weights, and the Python
# reference outputs of `tokenizers` and `onnxruntime`) with
# scripts/textmodel/make_text_models.py, into
# ${DRIFTLINE_CACHE:-$HOME/.cache/driftline}/textmodel/, and print that path.
# Nothing comes from a model hub. Idempotent: it rebuilds only when the
# corpus or the script changed (a stamp file holds their digests).
set -euo pipefail
cd "$(dirname "$0")/.."

TOKENIZERS_VERSION=0.23.3
ONNX_VERSION=1.23.2
ONNXRUNTIME_VERSION=1.29.0
NUMPY_VERSION=2.4.6

die() {
	echo "setup-textmodel: $*" >&2
	exit 1
}

command -v python3 >/dev/null 2>&1 || die "python3 is not installed (apt-get install python3 python3-pip)"
want="tokenizers==$TOKENIZERS_VERSION onnx==$ONNX_VERSION onnxruntime==$ONNXRUNTIME_VERSION numpy==$NUMPY_VERSION"
if ! python3 - "$TOKENIZERS_VERSION" "$ONNX_VERSION" "$ONNXRUNTIME_VERSION" "$NUMPY_VERSION" 2>/dev/null <<'PY'; then
import sys, tokenizers, onnx, onnxruntime, numpy
sys.exit([tokenizers.__version__, onnx.__version__, onnxruntime.__version__, numpy.__version__] != sys.argv[1:])
PY
	echo "setup-textmodel: pip install $want" >&2
	# shellcheck disable=SC2086
	python3 -m pip install -q $want >&2 || die "could not install $want with pip; is PyPI reachable?"
fi

out="${DRIFTLINE_CACHE:-$HOME/.cache/driftline}/textmodel"
stamp=$(cat models/tokenizer/testdata/corpus.jsonl scripts/textmodel/make_text_models.py | sha256sum | cut -d' ' -f1)
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ]; then
	echo "setup-textmodel: fixtures up to date in $out" >&2
	echo "$out"
	exit 0
fi
tmp="$out.tmp.$$"
rm -rf "$tmp"
python3 scripts/textmodel/make_text_models.py "$tmp" >/dev/null || die "make_text_models.py failed"
echo "$stamp" >"$tmp/stamp"
rm -rf "$out"
mv "$tmp" "$out"
echo "setup-textmodel: fixtures built in $out" >&2
echo "$out"
