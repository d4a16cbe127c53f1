#!/usr/bin/env python3
"""Reference values for llm-bench's statistics tests, computed by SciPy (an implementation
independent of ours). Writes tests/data/stats_reference.json; run it again only to add cases:

    python3 -m venv /tmp/v && /tmp/v/bin/pip install scipy && /tmp/v/bin/python scripts/stats_reference.py

Each case is two samples as (value, count) pairs, the form an HDR histogram has: equal values
are exact ties. SciPy's mannwhitneyu is called with the new sample first, two-sided, with the
normal approximation, tie correction and continuity correction (its defaults for ties).
"""
import json
import pathlib

import numpy as np
import scipy
from scipy.stats import mannwhitneyu


def expand(pairs):
    return np.repeat([v for v, _ in pairs], [c for _, c in pairs])


rng = np.random.default_rng(20261130)


def histogram_like(values, bucket):
    """Values rounded to a bucket width, as a histogram stores them: many ties."""
    rounded = np.round(np.asarray(values) / bucket).astype(int) * bucket
    uniq, counts = np.unique(rounded, return_counts=True)
    return [[int(v), int(c)] for v, c in zip(uniq, counts)]


cases = [
    {"name": "small, no ties", "base": [[1, 1], [3, 1], [5, 1], [7, 1], [9, 1]],
     "new": [[2, 1], [4, 1], [6, 1], [8, 1], [10, 1], [12, 1]]},
    {"name": "heavy ties", "base": [[10, 5], [20, 3], [30, 2]],
     "new": [[10, 1], [20, 4], [30, 4], [40, 3]]},
    {"name": "identical", "base": [[5, 10], [6, 10]], "new": [[5, 10], [6, 10]]},
    {"name": "latency, slower new (lognormal, 1 ms buckets)",
     "base": histogram_like(rng.lognormal(np.log(50_000), 0.3, 400), 1000),
     "new": histogram_like(rng.lognormal(np.log(53_000), 0.3, 350), 1000)},
    {"name": "latency, same distribution (lognormal, 1 ms buckets)",
     "base": histogram_like(rng.lognormal(np.log(80_000), 0.5, 1000), 1000),
     "new": histogram_like(rng.lognormal(np.log(80_000), 0.5, 1200), 1000)},
    {"name": "faster new, unequal sizes",
     "base": histogram_like(rng.normal(120_000, 15_000, 250), 500),
     "new": histogram_like(rng.normal(100_000, 15_000, 60), 500)},
]

for case in cases:
    base, new = expand(case["base"]), expand(case["new"])
    result = mannwhitneyu(new, base, alternative="two-sided", method="asymptotic",
                          use_continuity=True)
    case["u_new"] = float(result.statistic)
    case["p_value"] = float(result.pvalue)
    case["effect"] = float(result.statistic) / (len(base) * len(new))

out = {"generator": f"scripts/stats_reference.py, scipy {scipy.__version__}", "cases": cases}
path = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "stats_reference.json"
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {path}")
