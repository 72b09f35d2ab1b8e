"""River's side of BENCHMARKS.md's tree comparison: River's trees on a CSV
stream, predicted then learned row by row, as `driftline eval` does.

Measured with river 0.26.1, Python 3.11.7. scripts/bench-trees-river.sh runs
it next to `driftline eval` on the same file; alone:

    python3 bench_river.py --in agrawal.csv --label y --models ht,hat,arf --seed 1

The file is read into dicts of floats before timing. For each row the
model's predict_proba_one is scored (accuracy of its argmax, the first class
of greatest probability; log loss) and then learn_one learns the row: the
same loop as driftline's evaluation. Prints one JSON object per model:
model, rows, accuracy, logloss, seconds, events_per_s.
"""
import argparse
import csv
import json
import math
import time

import river
from river import forest, tree

MODELS = {
    "ht": lambda seed: tree.HoeffdingTreeClassifier(),
    "hat": lambda seed: tree.HoeffdingAdaptiveTreeClassifier(seed=seed),
    "arf": lambda seed: forest.ARFClassifier(n_models=10, seed=seed),
}


def load(path, label):
    """Rows as dicts of floats. Each key is prefixed with its column's
    position, so that River's sorted(x) — the order ARF samples subspaces
    from — is the file's column order, which driftline's trees use."""
    rows = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        li = header.index(label)
        keys = ["%03d_%s" % (i, name) for i, name in enumerate(header)]
        for rec in reader:
            x = {keys[i]: float(v) for i, v in enumerate(rec) if i != li}
            rows.append((x, int(float(rec[li]))))
    return rows


def run(name, model, rows):
    correct, logloss = 0, 0.0
    start = time.perf_counter()
    for x, y in rows:
        proba = model.predict_proba_one(x)
        pred = max(proba, key=proba.get) if proba else None
        if pred == y:
            correct += 1
        p = min(max(proba.get(y, 0.0), 1e-15), 1 - 1e-15)
        logloss -= math.log(p)
        model.learn_one(x, y)
    seconds = time.perf_counter() - start
    n = len(rows)
    return {"model": name, "river": river.__version__, "rows": n, "accuracy": correct / n,
            "logloss": logloss / n, "seconds": seconds, "events_per_s": n / seconds}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--in", dest="path", required=True)
    ap.add_argument("--label", default="y")
    ap.add_argument("--models", default="ht,hat,arf")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rows = load(args.path, args.label)
    for name in args.models.split(","):
        print(json.dumps(run(name, MODELS[name](args.seed), rows)), flush=True)


if __name__ == "__main__":
    main()
