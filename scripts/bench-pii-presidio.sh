#!/usr/bin/env bash
# bench-pii-presidio.sh: driftline's free-text PII recognizers next to
# Presidio's pattern recognizers on the same labelled corpus
# (stages/textpii/testdata/corpus.jsonl, 2,400 lines), in one run:
# throughput as a ratio, and precision and recall per type.
#
#   go side:       BenchmarkScanCorpus (stages/textpii: find only) and
#                  BenchmarkTextPIICorpus (stages: the text PII stage, find +
#                  redact + new Arrow column), one goroutine
#   Presidio side: scripts/pii/presidio_bench.py (analyze; analyze + the
#                  anonymizer's replace), one process, best of REPEAT
#
# Needs pip install presidio-analyzer==2.2.366 presidio-anonymizer==2.2.366
# (Presidio is not a dependency of driftline and is not installed by setup).
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-3}

python3 -c 'import presidio_analyzer, presidio_anonymizer' 2>/dev/null ||
	{ echo "bench-pii-presidio: pip install presidio-analyzer==2.2.366 presidio-anonymizer==2.2.366" >&2; exit 1; }

go_scan=$(go test -run '^$' -bench 'BenchmarkScanCorpus$' -benchtime 2s ./stages/textpii | awk '/^BenchmarkScanCorpus/ {print $3}')
go_stage=$(go test -run '^$' -bench 'BenchmarkTextPIICorpus$' -benchtime 2s ./stages | awk '/^BenchmarkTextPIICorpus/ {print $3}')
presidio=$(python3 scripts/pii/presidio_bench.py "$REPEAT")
go_recall=$(go test -run TestCorpusPrecisionRecall -v ./stages/textpii | sed -n '/type  *tp/,/^---/p' | grep -v '^---')

python3 - "$go_scan" "$go_stage" "$presidio" "$go_recall" <<'PY'
import json, sys
scan_ns, stage_ns, presidio, table = float(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
lines = presidio["lines"]
go_scan, go_stage = lines / (scan_ns / 1e9), lines / (stage_ns / 1e9)
p_an, p_full = presidio["lines_per_s"]["analyze"], presidio["lines_per_s"]["analyze+anonymize"]
print(f"corpus: {lines} lines")
print(f"find only:        driftline {go_scan:12,.0f} lines/s   Presidio analyze            {p_an:8,.0f} lines/s   ratio {go_scan / p_an:8,.0f}x")
print(f"find and rewrite: driftline {go_stage:12,.0f} lines/s   Presidio analyze+anonymize  {p_full:8,.0f} lines/s   ratio {go_stage / p_full:8,.0f}x")
print("\ndriftline (exact spans):")
print(table.rstrip())
print("\nPresidio (exact spans; recall_overlap: any overlap with the labelled span of the same type):")
print(f"{'type':16s} {'precision':>9s} {'recall':>7s} {'recall_overlap':>14s}")
for t, s in presidio["types"].items():
    print(f"{t:16s} {s['precision']:9.4f} {s['recall']:7.4f} {s['recall_overlap']:14.4f}")
print("cn_resident_id: Presidio has no recognizer")
PY
