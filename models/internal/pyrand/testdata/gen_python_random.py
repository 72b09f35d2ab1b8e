"""Regenerates python_random.json: CPython's random.Random outputs.

Run with the Python that River runs on (measured with Python 3.11.7):

    python3 gen_python_random.py > python_random.json
"""
import json
import math
import random
import sys

out = {"python": sys.version.split()[0], "cases": []}
for seed in (0, 1, 42, 2**32 + 5, 2**63 + 12345):
    r = random.Random(seed)
    case = {"seed": seed}
    case["random"] = [r.random() for _ in range(700)]  # crosses a twist
    case["bits"] = [[k, r.getrandbits(k)] for k in (1, 5, 17, 31, 32)]
    case["below"] = [[n, r._randbelow(n)] for n in (1, 2, 3, 7, 10, 100, 1000, 2**31 + 1)]
    case["sample"] = [[n, k, r.sample(range(n), k)] for n, k in ((9, 3), (12, 12), (30, 2), (100, 6), (400, 8))]

    def poisson(rate):
        L = math.exp(-rate)
        k, p = 0, 1.0
        while p > L:
            k += 1
            p *= r.random()
        return k - 1

    case["poisson6"] = [poisson(6) for _ in range(50)]
    case["poisson1"] = [poisson(1) for _ in range(50)]
    out["cases"].append(case)
print(json.dumps(out))
