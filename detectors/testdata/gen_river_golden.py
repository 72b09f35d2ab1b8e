"""Regenerates river_golden.json: River's outputs on fixed streams.

Run with River installed (measured with river 0.26.1, scipy 1.17.1):

    python3 gen_river_golden.py > river_golden.json

The streams themselves are stored in the JSON, because Python's random module
cannot be reproduced from Go. The Go test feeds the stored streams to the Go
detectors and compares the indices at which drift and warning were reported.
"""
import json
import random

import river
import scipy
from river import drift
from scipy import stats


def run(det, stream):
    drifts, warnings = [], []
    for i, x in enumerate(stream):
        det.update(x)
        if det.drift_detected:
            drifts.append(i)
        if getattr(det, "warning_detected", False):
            warnings.append(i)
    return {"drifts": drifts, "warnings": warnings}


rng = random.Random(12345)
continuous_doctest = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)

rng = random.Random(42)
binary_doctest = rng.choices([0, 1], k=1000)
binary_doctest += rng.choices([0, 1], k=1000, weights=[0.3, 0.7])

rng = random.Random(7)
gauss = []
for mean, n in [(0.0, 3000), (1.5, 3000), (-0.5, 3000), (-0.5, 3000)]:
    gauss += [round(rng.gauss(mean, 1.0), 4) for _ in range(n)]

rng = random.Random(11)
binary_long = []
for p, n in [(0.1, 4000), (0.4, 4000), (0.05, 4000), (0.3, 4000)]:
    binary_long += [1 if rng.random() < p else 0 for _ in range(n)]

streams = {
    "continuous_doctest": continuous_doctest,
    "binary_doctest": binary_doctest,
    "gauss_shifts": gauss,
    "binary_long": binary_long,
}

continuous = {"ADWIN": drift.ADWIN, "PageHinkley": drift.PageHinkley}
binary = {
    "DDM": drift.binary.DDM,
    "EDDM": drift.binary.EDDM,
    "HDDM_A": drift.binary.HDDM_A if hasattr(drift.binary, "HDDM_A") else drift.binary.HDDMA,
    "HDDM_W": drift.binary.HDDM_W if hasattr(drift.binary, "HDDM_W") else drift.binary.HDDMW,
}

results = []
for sname in ["continuous_doctest", "gauss_shifts", "binary_doctest", "binary_long"]:
    for dname, cls in continuous.items():
        results.append({"detector": dname, "stream": sname, **run(cls(), streams[sname])})
for sname in ["binary_doctest", "binary_long"]:
    for dname, cls in binary.items():
        results.append({"detector": dname, "stream": sname, **run(cls(), streams[sname])})
results.append({"detector": "EDDM(alpha=0.8,beta=0.75)", "stream": "binary_doctest",
                **run(drift.binary.EDDM(alpha=0.8, beta=0.75), binary_doctest)})

# Two-sample KS on equal sizes of 30, as KSWIN calls it (method="auto" is exact here).
rng = random.Random(3)
ks_cases = []
for shift in [0.0, 0.3, 0.6, 1.0, 2.0]:
    for ints in [False, True]:
        a = [rng.gauss(0, 1) for _ in range(30)]
        b = [rng.gauss(shift, 1) for _ in range(30)]
        if ints:
            a = [float(round(v * 2)) for v in a]
            b = [float(round(v * 2)) for v in b]
        else:
            a = [round(v, 4) for v in a]
            b = [round(v, 4) for v in b]
        st, p = stats.ks_2samp(a, b, method="auto")
        ks_cases.append({"a": a, "b": b, "statistic": float(st), "pvalue": float(p)})

chi2_cases = [{"x": x, "df": df, "sf": float(stats.chi2.sf(x, df))}
              for x, df in [(0.5, 1), (3.84, 1), (10.0, 4), (25.0, 9), (7.0, 9), (120.0, 99), (300.0, 199)]]

print(json.dumps({
    "river_version": river.__version__,
    "scipy_version": scipy.__version__,
    "streams": streams,
    "results": results,
    "ks_2samp": ks_cases,
    "chi2_sf": chi2_cases,
}, separators=(",", ":")))
