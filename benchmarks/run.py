"""Performance suite: each kernel family timed against a baseline in the same run.

    python benchmarks/run.py                 # every benchmark, JSON to benchmarks/results/
    python benchmarks/run.py --only meanfield_grid --baseline-points 20

Each benchmark returns a record with the kernel's time, the baseline's time (measured
on a sample of points when the full baseline would take minutes, then scaled, which
the record says), their ratio, and the accuracy of the kernel against the baseline.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from sigprop import meanfield as mf
from sigprop import runtime


def _best_of(fn, repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _quad_q_star_chi1(sw: float, sb: float) -> tuple[float, float]:
    """Baseline: per-point scipy.integrate.quad inside brentq (q* of tanh lies in
    [sigma_b^2, sigma_w^2 + sigma_b^2] because tanh^2 <= 1), then chi_1 by quad."""
    from scipy import integrate, optimize

    def gauss(f, q):
        g = lambda z: f(math.sqrt(q) * z) * math.exp(-0.5 * z * z)
        return integrate.quad(g, -np.inf, np.inf, epsabs=1e-13, epsrel=1e-12)[0] / math.sqrt(2 * math.pi)

    def g(q):
        return sw * sw * gauss(lambda u: math.tanh(u) ** 2, q) + sb * sb - q

    lo, hi = sb * sb, sw * sw + sb * sb
    if sb == 0.0 and g(1e-12) <= 0:  # ordered, no bias: q* = 0
        q = 0.0
    else:
        q = optimize.brentq(g, max(lo, 1e-12), hi + 1e-12, xtol=1e-14, rtol=1e-12)
    chi = sw * sw * gauss(lambda u: (1 - math.tanh(u) ** 2) ** 2, q)
    return q, chi


def bench_meanfield_grid(n: int = 200, baseline_points: int = 40, seed: int = 0) -> dict:
    """q* and chi_1 of tanh on an n x n (sigma_w, sigma_b) grid in one call, against
    per-point quad (sigma_w in [0.5, 4], sigma_b in [0.05, 4], the range of Poole et al.'s Fig. 1)."""
    sw = torch.linspace(0.5, 4.0, n, dtype=torch.float64)
    sb = torch.linspace(0.05, 4.0, n, dtype=torch.float64)
    mf.phase_diagram("tanh", sw[:24], sb[:24])  # warm-up: imports, caches
    result = {}

    def run():
        result["pd"] = mf.phase_diagram("tanh", sw, sb)

    t_kernel = _best_of(run, 3)
    pd = result["pd"]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(baseline_points, 2))
    t0 = time.perf_counter()
    errs_q, errs_chi = [], []
    for i, j in idx:
        q, chi = _quad_q_star_chi1(float(sw[i]), float(sb[j]))
        errs_q.append(abs(float(pd.q_star[i, j]) - q) / max(q, 1e-300))
        errs_chi.append(abs(float(pd.chi_1[i, j]) - chi) / chi)
    t_base_point = (time.perf_counter() - t0) / baseline_points
    t_base = t_base_point * n * n
    return {
        "name": "meanfield_grid",
        "what": f"q* and chi_1 of tanh on a {n}x{n} grid, one call",
        "kernel_s": t_kernel,
        "baseline": "per-point scipy.integrate.quad inside brentq",
        "baseline_s": t_base,
        "baseline_note": f"measured on {baseline_points} random grid points ({t_base_point * 1e3:.1f} ms each), scaled to {n * n}",
        "ratio": t_base / t_kernel,
        "goal": "ratio >= 1000 and kernel_s <= 2",
        "max_rel_err_q_star": max(errs_q),
        "max_rel_err_chi_1": max(errs_chi),
    }


BENCHMARKS = {"meanfield_grid": bench_meanfield_grid}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=sorted(BENCHMARKS), action="append", help="run only these benchmarks")
    ap.add_argument("--baseline-points", type=int, default=40, help="points on which the slow baseline is timed")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"), help="folder for the JSON table")
    args = ap.parse_args(argv)
    if args.baseline_points < 1:
        ap.error("--baseline-points must be >= 1")
    env = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        **runtime.describe(),
    }
    records = []
    for name in args.only or sorted(BENCHMARKS):
        fn = BENCHMARKS[name]
        rec = fn(baseline_points=args.baseline_points) if name == "meanfield_grid" else fn()
        records.append(rec)
        print(
            f"{rec['name']:>16}: kernel {rec['kernel_s']:.3f} s | baseline {rec['baseline_s']:.1f} s "
            f"({rec['baseline_note']}) | ratio {rec['ratio']:.0f}x | goal: {rec['goal']}"
        )
        for k, v in rec.items():
            if k.startswith("max_rel_err"):
                print(f"{'':>18}{k} = {v:.1e}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"environment": env, "results": records}, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
