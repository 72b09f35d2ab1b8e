#!/usr/bin/env bash
# driftline's trees next to River's, on the same rows, in one sitting
# (models/BENCHMARKS.md): an Agrawal stream with an abrupt drift (function 0
# to 4 at the middle) is written to a CSV by `driftline eval --save`, then
# each model is evaluated prequentially on that file by `driftline eval`
# (REPEAT times, the median kept) and by River
# (models/testdata/bench_river.py), and the accuracies and events/s are
# printed side by side with their ratio.
#
#   EVENTS=100000 REPEAT=3 bash scripts/bench-trees-river.sh
#
# Needs Go and Python 3 with river (pip install river==0.26.1).
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-100000}
repeat=${REPEAT:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -c 'import river' 2>/dev/null || { echo "River is not installed: pip install river==0.26.1" >&2; exit 1; }
go build -o "$work/driftline" ./cmd/driftline
"$work/driftline" eval --model hoeffding_tree --stream agrawal --events "$events" --drift abrupt \
	--save "$work/agrawal.csv" --json >/dev/null
echo "stream: Agrawal function 0 -> 4 at row $((events / 2)), $events rows, $(nproc) CPUs, $(go version | cut -d' ' -f3)"
for pair in hoeffding_tree:ht hat:hat arf:arf; do
	ours=${pair%%:*} theirs=${pair##*:}
	params=()
	[ "$ours" = hoeffding_tree ] || params=(--param seed=1)
	for i in $(seq "$repeat"); do
		"$work/driftline" eval --model "$ours" "${params[@]}" --in "$work/agrawal.csv" --label y --json >"$work/$ours.$i.json"
	done
	python3 models/testdata/bench_river.py --in "$work/agrawal.csv" --label y --models "$theirs" --seed 1 >"$work/$theirs.river.json"
	python3 - "$work" "$ours" "$theirs" "$repeat" <<'PY'
import json, statistics, sys
work, ours, theirs, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
runs = [json.load(open(f"{work}/{ours}.{i}.json")) for i in range(1, repeat + 1)]
river = json.loads(open(f"{work}/{theirs}.river.json").read())
eps = statistics.median(r["events_per_s"] for r in runs)
print(f"{ours:15s} driftline accuracy {runs[0]['accuracy']:.4f} {eps:12.0f} events/s | "
      f"River {river['river']} accuracy {river['accuracy']:.4f} {river['events_per_s']:9.0f} events/s | "
      f"speed ratio {eps / river['events_per_s']:6.1f}x")
PY
done
