"""The benchmark command runs and reports a ratio (small sizes, so it stays fast)."""
import importlib.util
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_meanfield_benchmark_reports_ratio_and_accuracy(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rec = mod.bench_gaussian_expect(n=500, baseline_points=3)
    assert rec["ratio"] > 1 and rec["max_rel_err"] < 1e-8
    rec = mod.bench_meanfield_grid(n=60, baseline_points=3)
    assert rec["ratio"] > 1 and rec["kernel_s"] > 0
    assert rec["max_rel_err_q_star"] < 1e-8 and rec["max_rel_err_chi_1"] < 1e-7
    assert mod.main(["--only", "meanfield_grid", "--baseline-points", "2", "--out", str(tmp_path)]) == 0
    out = json.loads(next(tmp_path.glob("bench-*.json")).read_text())
    assert out["results"][0]["name"] == "meanfield_grid"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ensemble_benchmarks_report_ratios_against_their_baselines():
    mod = _bench()
    rec = mod.bench_mlp_forward(width=64, batch=32, depth=3, n_nets=2, device="cpu")
    assert rec["kernel_s"] > 0 and rec["baseline_s"] > 0 and 0 < rec["fraction_of_peak"]
    rec = mod.bench_mlp_gram(width=128, batch=8, depth=3, n_nets=2, device="cpu")
    assert rec["ratio"] > 0
    rec = mod.bench_jacobian(width=16, depth=3, n_nets=4, jacrev_nets=2, device="cpu")
    assert rec["max_rel_err_singular_values"] < 1e-4  # the same networks' singular values as jacrev's


def test_memory_benchmark_measures_two_depths_in_fresh_processes():
    # A large resident set in this (parent) process must not hide the children's increments:
    # ru_maxrss once inherited the parent's size at fork and reported 0 MiB everywhere.
    ballast = torch.ones(64 * 2**20 // 4 * 4)  # 256 MiB, touched
    rec = _bench().bench_memory(depths=(5, 50), width=256, device="cpu")
    del ballast
    assert set(rec["increment_mib"]) == {"forward@5", "forward@50", "backward@5", "backward@50"}
    assert all(v > 0.5 for v in rec["increment_mib"].values()), rec["increment_mib"]
    # keeping every layer's h and x at depth 50 would take 50 MiB; the forward pass keeps none
    assert rec["increment_mib"]["forward@50"] < 20


def test_signal_noise_and_resnet_jacobian_benchmarks_run_against_their_baselines():
    mod = _bench()
    for arch in ("vanilla", "bn_ff", "bn_res"):
        rec = mod.bench_signal_noise(width=8, batch=4, depth=2, n_nets=2, device="cpu", arch=arch)
        assert rec["kernel_s"] > 0 and rec["baseline_s"] > 0 and rec["fraction_of_peak"] > 0
    assert {"signal_noise_bn_ff", "signal_noise_bn_res", "resnet_forward"} <= set(mod.DEFAULT)
    rec = mod.bench_resnet_forward(width=32, depth=3, n_nets=2, naive_nets=1, device="cpu")
    assert rec["kernel_s"] > 0 and rec["weight_draw_s"] > 0 and rec["ratio"] > 0
    rec = mod.bench_resnet_jacobian(width=16, depth=4, n_nets=2, jacrev_nets=2, device="cpu")
    assert rec["max_rel_err_singular_values"] < 1e-4  # the same networks as jacrev's


def test_unavailable_device_is_refused_with_a_clear_message(capsys):
    import pytest

    mod = _bench()
    with pytest.raises(SystemExit) as exc:
        mod.main(["--only", "mlp_gram", "--device", "tpu"])
    assert exc.value.code == 2
    assert "--device" in capsys.readouterr().err
