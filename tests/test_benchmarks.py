"""The benchmark command runs and reports a ratio (small sizes, so it stays fast)."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_meanfield_benchmark_reports_ratio_and_accuracy(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rec = mod.bench_meanfield_grid(n=60, baseline_points=3)
    assert rec["ratio"] > 1 and rec["kernel_s"] > 0
    assert rec["max_rel_err_q_star"] < 1e-8 and rec["max_rel_err_chi_1"] < 1e-7
    assert mod.main(["--only", "meanfield_grid", "--baseline-points", "2", "--out", str(tmp_path)]) == 0
    out = json.loads(next(tmp_path.glob("bench-*.json")).read_text())
    assert out["results"][0]["name"] == "meanfield_grid"
