#!/usr/bin/env bash
# gen-pii-corpus.sh: regenerate stages/textpii/testdata/corpus.jsonl, the
# labelled free-text PII corpus (2,400 English and Chinese lines, seed 16),
# from testkit/streams.PIIText. A test checks that the committed file is
# what the generator writes.
set -euo pipefail
cd "$(dirname "$0")/.."
go test ./stages/textpii -run TestCorpusIsGenerated -count=1 -update
