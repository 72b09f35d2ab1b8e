"""Regenerates river_trees.json: River's Hoeffding trees and forests on
seeded streams.

Run with River installed (measured with river 0.26.1, Python 3.11.7; the
Python version matters: from 3.12 on, sum() of floats is compensated, and
River's trees sum their class weights with it):

    python3 gen_river_trees.py > river_trees.json

The streams. Every feature value comes from random.Random(seed): a dense
value is randint(0, 65536) / 1024 (exact in float32, which driftline's rows
hold), a categorical one randint(0, V - 1); a dense value is missing (its key
left out of x) where random.Random(seed + 2).random() < missing. Go's
models/internal/pyrand reproduces random.Random bit for bit (tested against
CPython), so the Go test regenerates the features from the seed instead of
this file holding them; the file keeps the first rows and a checksum of all
of them, which the test compares first. Labels come from the concept with
noise drawn from random.Random(seed + 1); they are stored.

A categorical field f with value v is hash bucket f*V + v in driftline; River
sees it as the one-hot column "b<bucket>" (0 or 1, in nominal_attributes),
given in full for every row, which is what driftline's trees model.

Recorded per stream: River's prediction for every row before learning it
(predict_proba_one / predict_one, then learn_one: progressive validation),
(for two classes P(y=1), else the K probabilities, row after row; null
where River predicts nothing), and, for single trees, the tree's structure after every row where it
changed (preorder; branches as [feature, threshold] or [bucket, child of
"present"], leaves as null).
"""
import json
import math
import random

import river
from river import forest, tree
from river.tree.nodes.branch import DTBranch, NominalBinaryBranch, NominalMultiwayBranch, NumericBinaryBranch

VOCAB = 6


def dense_name(j):
    return "a%02d" % j


def bucket_name(b):
    return "b%04d" % b


def features(seed, n, n_dense, n_cat, missing):
    rx = random.Random(seed)
    rm = random.Random(seed + 2)
    rows = []
    for _ in range(n):
        dense = [rx.randint(0, 65536) / 1024 for _ in range(n_dense)]
        cats = [f * VOCAB + rx.randint(0, VOCAB - 1) for f in range(n_cat)]
        present = [not (missing > 0 and rm.random() < missing) for _ in range(n_dense)]
        rows.append((dense, cats, present))
    return rows


def to_x(row, n_cat):
    dense, cats, present = row
    x = {dense_name(j): v for j, v in enumerate(dense) if present[j]}
    for b in range(n_cat * VOCAB):
        x[bucket_name(b)] = 1 if b in cats else 0
    return x


def checksum(rows):
    s = 0.0
    for dense, cats, present in rows:
        s += sum(v for v, p in zip(dense, present) if p) + sum(cats)
    return s


# Concepts: label from the full (unmissing) dense values and categories.
def concept_steps(dense, cats):
    if dense[0] > 40:
        return 1
    return int(dense[1] > 24)


def concept_regions3(dense, cats):
    if dense[0] < 32:
        return 0
    return 1 if dense[1] > 48 else 2


def concept_nominal(dense, cats):
    if cats[0] % VOCAB == 1:
        return 1
    return int(dense[0] > 48 and cats[1] % VOCAB != 2)


def concept_drift(i, n):
    def f(dense, cats):
        if i < n // 2:
            return int(dense[0] + dense[1] > 64)
        return int((dense[2] > 32) == (dense[3] < 24))
    return f


def target_regression(dense, cats):
    if dense[0] < 24:
        return 3.0 + 0.1 * dense[1]
    return -2.0 + (0.05 * dense[2] if dense[3] > 32 else 5.0)


def target_drift(i, n):
    def f(dense, cats):
        if i < n // 2:
            return target_regression(dense, cats)
        return 10.0 - target_regression(dense, cats) if dense[1] > 16 else 1.0
    return f


def structure(node):
    out = []

    def walk(n):
        if isinstance(n, DTBranch):
            if isinstance(n, NumericBinaryBranch):
                out.append([n.feature, n.threshold])
            elif isinstance(n, NominalMultiwayBranch):
                # children follow the sorted values: [absent (0), present (1)]
                assert sorted(n._mapping) == [0, 1], n._mapping
                out.append([n.feature, n._mapping[1]])
            elif isinstance(n, NominalBinaryBranch):
                out.append([n.feature, 0 if n.value == 1 else 1])
            else:
                raise TypeError(type(n))
            for c in n.children:
                walk(c)
        else:
            out.append(None)

    if node is not None:
        walk(node)
    return out


def fmt(v):
    return float("%.8g" % v)


def run(name, model, seed, n, n_dense, n_cat, missing, label, classes, task, structures):
    rows = features(seed, n, n_dense, n_cat, missing)
    rn = random.Random(seed + 1)
    ys, preds, splits = [], [], []
    last = None
    for i, row in enumerate(rows):
        dense, cats, _ = row
        x = to_x(row, n_cat)
        concept = label(i, n) if label in (concept_drift, target_drift) else label
        if task == "regression":
            y = concept(dense, cats) + rn.gauss(0, 0.1)
            y = round(y, 6)
        else:
            y = concept(dense, cats)
            if rn.random() < 0.05:
                y = rn.randrange(classes)
        if task == "regression":
            preds.append(fmt(model.predict_one(x)))
        else:
            p = model.predict_proba_one(x)
            if classes == 2:
                preds.append(fmt(p.get(1, 0.0)) if p else None)
            else:
                preds.extend(fmt(p.get(c, 0.0)) if p else None for c in range(classes))
        model.learn_one(x, y)
        ys.append(y)
        if structures:
            s = structure(model._root)
            if s != last:
                splits.append([i, s])
                last = s
    out = {
        "name": name, "seed": seed, "rows": n, "dense": n_dense, "categorical": n_cat, "vocabulary": VOCAB,
        "missing": missing, "classes": classes, "task": task,
        "first_rows": [[r[0], r[1], r[2]] for r in rows[:2]], "checksum": checksum(rows),
        "y": ys if task == "regression" else "".join(str(v) for v in ys),
        "predictions": preds,
    }
    if structures:
        out["structures"] = splits
    return out


def nominal(n_cat):
    return [bucket_name(b) for b in range(n_cat * VOCAB)] or None


cases = []
cases.append(dict(name="ht_steps_nba", model=tree.HoeffdingTreeClassifier(grace_period=100), seed=11, n=3000,
                  n_dense=5, n_cat=0, missing=0.0, label=concept_steps, classes=2, task="classification",
                  params={"grace_period": 100}))
cases.append(dict(name="ht_regions3_gini_mc", model=tree.HoeffdingTreeClassifier(
    grace_period=50, split_criterion="gini", leaf_prediction="mc"), seed=12, n=2000, n_dense=4, n_cat=0,
    missing=0.0, label=concept_regions3, classes=3, task="classification",
    params={"grace_period": 50, "split_criterion": "gini", "leaf_prediction": "mc"}))
cases.append(dict(name="ht_missing_nb", model=tree.HoeffdingTreeClassifier(grace_period=100, leaf_prediction="nb"),
                  seed=13, n=3000, n_dense=5, n_cat=0, missing=0.05, label=concept_steps, classes=2,
                  task="classification", params={"grace_period": 100, "leaf_prediction": "nb"}))
cases.append(dict(name="ht_nominal_nba", model=tree.HoeffdingTreeClassifier(grace_period=100, nominal_attributes=nominal(2)),
                  seed=14, n=3000, n_dense=3, n_cat=2, missing=0.0, label=concept_nominal, classes=2,
                  task="classification", params={"grace_period": 100}))
cases.append(dict(name="htr_adaptive", model=tree.HoeffdingTreeRegressor(grace_period=100), seed=21, n=3000,
                  n_dense=4, n_cat=0, missing=0.0, label=target_regression, classes=0, task="regression",
                  params={"grace_period": 100}))
cases.append(dict(name="htr_mean", model=tree.HoeffdingTreeRegressor(grace_period=100, leaf_prediction="mean"),
                  seed=22, n=2000, n_dense=4, n_cat=0, missing=0.0, label=target_regression, classes=0,
                  task="regression", params={"grace_period": 100, "leaf_prediction": "mean"}))
cases.append(dict(name="hat_drift", model=tree.HoeffdingAdaptiveTreeClassifier(grace_period=100, seed=5), seed=31,
                  n=5000, n_dense=4, n_cat=0, missing=0.0, label=concept_drift, classes=2, task="classification",
                  params={"grace_period": 100, "seed": 5}))
cases.append(dict(name="arf_drift", model=forest.ARFClassifier(n_models=5, seed=6), seed=32, n=4000, n_dense=4,
                  n_cat=0, missing=0.0, label=concept_drift, classes=2, task="classification",
                  params={"n_models": 5, "seed": 6}))
cases.append(dict(name="arf_regressor", model=forest.ARFRegressor(n_models=5, seed=7), seed=33, n=3000, n_dense=4,
                  n_cat=0, missing=0.0, label=target_drift, classes=0, task="regression",
                  params={"n_models": 5, "seed": 7}))

out = {"river_version": river.__version__, "streams": []}
for c in cases:
    single = not c["name"].startswith(("hat", "arf"))
    rec = run(c["name"], c["model"], c["seed"], c["n"], c["n_dense"], c["n_cat"], c["missing"], c["label"],
              c["classes"], c["task"], single)
    rec["params"] = c["params"]
    out["streams"].append(rec)
print(json.dumps(out, separators=(",", ":")))
