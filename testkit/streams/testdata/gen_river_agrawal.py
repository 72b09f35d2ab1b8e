"""Regenerates river_agrawal.json: River's Agrawal rows and label rates.

Run with River installed (measured with river 0.26.1, Python 3.11.7):

    python3 gen_river_agrawal.py > river_agrawal.json

Python's random module cannot be reproduced from Go, so the rows themselves
are stored: the Go test labels River's attributes with its own classification
functions and compares the labels, and compares each function's share of
label 1 over 20,000 rows with the Go generator's. Perturbed rows let it check
the perturbation's clamping and rounding.
"""
import json

import river
from river.datasets import synth

FEATURES = ["salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears", "loan"]

out = {"river_version": river.__version__, "functions": [], "perturbed": []}
for f in range(10):
    rows = [([x[k] for k in FEATURES], y) for x, y in synth.Agrawal(classification_function=f, seed=100 + f).take(150)]
    ys = [y for _, y in synth.Agrawal(classification_function=f, seed=5).take(20000)]
    out["functions"].append({
        "function": f,
        "x": [r[0] for r in rows],
        "y": [r[1] for r in rows],
        "share_of_ones": sum(ys) / len(ys),
    })
for p in (0.1, 0.5):
    rows = [[x[k] for k in FEATURES] for x, _ in synth.Agrawal(seed=7, perturbation=p).take(100)]
    out["perturbed"].append({"perturbation": p, "x": rows})
print(json.dumps(out))
