#!/usr/bin/env bash
# setup.sh prepares a fresh machine for driftline's tests: Go modules,
# redis-server, promtool and chromium (Debian packages redis-server,
# prometheus and chromium), the Apache Kafka jars (Maven Central),
# libonnxruntime (npm package onnxruntime-node), the text-model fixtures
# (scripts/setup-textmodel.sh: tokenizers, onnx and onnxruntime from PyPI
# build a tokenizer.json, tiny BERT models and their Python references),
# pyarrow (PyPI, the
# independent Parquet reader of the lake tests) and kafka-python (PyPI, the
# independent consumer of the Kafka codec test). Idempotent and cached under
# ${DRIFTLINE_CACHE:-$HOME/.cache/driftline}. It stops at the first missing
# piece and says what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYARROW_VERSION=26.0.1
KAFKA_PYTHON_VERSION=3.0.12

step() { printf 'setup: %s\n' "$*" >&2; }

step "Go modules"
go mod download

step "redis-server"
bash scripts/setup-redis.sh >/dev/null

step "promtool (Debian package prometheus)"
bash scripts/setup-apt.sh promtool prometheus >/dev/null

step "chromium (Debian package chromium)"
bash scripts/setup-apt.sh chromium chromium >/dev/null

step "Apache Kafka jars"
bash scripts/setup-kafka.sh >/dev/null

step "ONNX Runtime library"
bash scripts/setup-ort.sh >/dev/null

step "text-model fixtures"
bash scripts/setup-textmodel.sh >/dev/null

step "pyarrow $PYARROW_VERSION"
if ! python3 -c "import pyarrow, sys; sys.exit(pyarrow.__version__ != '$PYARROW_VERSION')" 2>/dev/null; then
	if ! python3 -m pip install -q "pyarrow==$PYARROW_VERSION"; then
		echo "setup: could not install pyarrow==$PYARROW_VERSION with pip; is PyPI reachable?" >&2
		exit 1
	fi
fi
step "kafka-python $KAFKA_PYTHON_VERSION"
if ! python3 -c "import kafka, sys; sys.exit(kafka.__version__ != '$KAFKA_PYTHON_VERSION')" 2>/dev/null; then
	if ! python3 -m pip install -q "kafka-python==$KAFKA_PYTHON_VERSION"; then
		echo "setup: could not install kafka-python==$KAFKA_PYTHON_VERSION with pip; is PyPI reachable?" >&2
		exit 1
	fi
fi
step "done"
