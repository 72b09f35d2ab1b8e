#!/usr/bin/env bash
# The hot path against the floor (issue 15): runs BenchmarkChain/dedupe=off and
# BenchmarkFloor (stages/floor_bench_test.go) back to back COUNT times (default 5),
# each run in its own process, and prints each run's ratio of their CPU time per
# event (cpu-ns/event, which includes each side's own GC) and the median.
set -euo pipefail
count=${COUNT:-5}
bin=$(mktemp -d)/stages.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
go test -c -o "$bin" ./stages/
cd stages
ratios=()
for _ in $(seq "$count"); do
  out=$("$bin" -test.run '^$' -test.bench '^BenchmarkChain$/^dedupe=off$|^BenchmarkFloor$' -test.benchtime 300x)
  echo "$out" | grep '^Benchmark' >&2
  r=$(echo "$out" | awk '
    { for (i = 2; i < NF; i++) if ($(i+1) == "cpu-ns/event") v = $i }
    /^BenchmarkChain\/dedupe=off/ { chain = v }
    /^BenchmarkFloor-/ { floor = v }
    END { if (chain == "" || floor == "") exit 1; printf "%.3f", chain / floor }')
  echo "chain/floor = ${r}x" >&2
  ratios+=("$r")
done
printf '%s\n' "${ratios[@]}" | sort -g | awk '{ r[NR] = $1 } END {
  m = (NR % 2) ? r[(NR+1)/2] : (r[NR/2] + r[NR/2+1]) / 2
  printf "hot path = %.2fx the floor in CPU per event (median of %d runs; goal <= 1.3x)\n", m, NR }'
