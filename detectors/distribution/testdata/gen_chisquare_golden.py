"""Regenerates chisquare_golden.json: scipy's chi-square test of homogeneity
of two histograms, with PSI and Jensen-Shannon computed as the Go package
documents them, for CompareCategories' golden test.

Run with scipy installed (measured with scipy 1.17.1, numpy 2.4.6):

    python3 gen_chisquare_golden.py > chisquare_golden.json

The counts are stored in the JSON, so the Go test needs no random numbers
of its own. The chi-square test is scipy.stats.chi2_contingency on the 2×k
table of the bins non-empty in either histogram, without Yates' continuity
correction (which scipy applies only when the table has 1 degree of
freedom).
"""
import json

import numpy as np
import scipy
from scipy import stats

PSI_FLOOR = 1e-4


def case(name, ref, cur):
    ref, cur = np.asarray(ref, dtype=np.int64), np.asarray(cur, dtype=np.int64)
    keep = (ref + cur) > 0
    table = np.vstack([ref[keep], cur[keep]])
    chi2, p, df, _ = stats.chi2_contingency(table, correction=False)
    pr, pc = ref / ref.sum(), cur / cur.sum()
    fr, fc = np.maximum(pr, PSI_FLOOR), np.maximum(pc, PSI_FLOOR)
    psi = float(np.sum((fc - fr) * np.log(fc / fr)))
    m = (pr + pc) / 2
    js = 0.0
    for a in (pr, pc):
        nz = a > 0
        js += float(np.sum(a[nz] * np.log2(a[nz] / m[nz]))) / 2
    return {
        "name": name,
        "reference": ref.tolist(),
        "current": cur.tolist(),
        "chi_square": float(chi2),
        "df": int(df),
        "p_value": float(p),
        "psi": psi,
        "jensen_shannon": js,
    }


rng = np.random.default_rng(20260116)
cases = [
    case("textbook 2x3", [10, 20, 30], [15, 15, 30]),
    case("two bins", [60, 40], [45, 55]),
    case("empty bins in both are left out", [50, 0, 30, 20, 0], [40, 0, 35, 25, 0]),
    case("a category new in the window", [500, 300, 200, 0], [480, 290, 190, 40]),
    case("a category gone from the window", [500, 300, 200, 10], [480, 330, 190, 0]),
]
# Seeded multinomial draws over 64 bins from one skewed distribution (no
# shift), and from a shifted one (a strong and a weak shift).
base = rng.dirichlet(np.full(64, 0.5))
shifted = 0.7 * base + 0.3 * rng.dirichlet(np.full(64, 0.5))
slightly = 0.97 * base + 0.03 * rng.dirichlet(np.full(64, 0.5))
cases.append(case("64 bins, no shift", rng.multinomial(5000, base), rng.multinomial(4000, base)))
cases.append(case("64 bins, weak shift", rng.multinomial(5000, base), rng.multinomial(4000, slightly)))
cases.append(case("64 bins, strong shift (tiny p-value)", rng.multinomial(5000, base), rng.multinomial(4000, shifted)))
cases.append(case("64 bins, unequal sizes", rng.multinomial(20000, base), rng.multinomial(700, base)))

print(json.dumps({"scipy": scipy.__version__, "numpy": np.__version__, "cases": cases}, indent=1))
