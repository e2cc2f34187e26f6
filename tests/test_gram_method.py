"""The weight-free ("gram") forward path has the same law as sampling weights."""
import math

import pytest
import torch

from sigprop import ensemble, runtime, stats


def _one_layer(method, seed, n_nets=400, width=64, sigma_b=0.3):
    x = torch.randn(3, 20, generator=torch.Generator().manual_seed(123), dtype=torch.float64)
    cfg = ensemble.MLPConfig(depth=1, width=width, act="tanh", sigma_w=1.3, sigma_b=sigma_b, n_nets=n_nets)
    tr = ensemble.propagate_mlp(x, cfg, generator=runtime.generator(seed, "cpu"), method=method, device="cpu", dtype=torch.float64)
    return x, tr


def test_first_layer_gram_matrix_matches_theory_for_both_methods():
    # E[q_ab] = sigma_w^2 <x_a, x_b>/n_in + sigma_b^2, exactly, for both paths
    for method in ("weights", "gram"):
        x, tr = _one_layer(method, seed=1)
        k = 1.3**2 * (x @ x.T) / 20 + 0.3**2
        q = tr.q[0]  # (n_nets, batch): mean over the 64 units of h^2, h ~ N(0, K_aa)
        sd = k.diagonal() * math.sqrt(2 / (64 * q.shape[0]))  # Var(h^2) = 2 K_aa^2
        assert ((q.mean(0) - k.diagonal()).abs() < 5 * sd).all(), method


def test_deep_forward_statistics_agree_in_distribution():
    x = torch.randn(6, 100, generator=torch.Generator().manual_seed(7))
    cfg = ensemble.MLPConfig(depth=12, width=256, act="tanh", sigma_w=1.6, sigma_b=0.2, n_nets=24)
    a = ensemble.propagate_mlp(x, cfg, generator=runtime.generator(0, "cpu"), method="weights", device="cpu")
    b = ensemble.propagate_mlp(x, cfg, generator=runtime.generator(1, "cpu"), method="gram", device="cpu")
    for key in ("q", "c"):
        ta, tb = getattr(a, key)[-1], getattr(b, key)[-1]
        # two-sample comparison of per-network statistics (24 independent nets each)
        diff = (ta.mean(0) - tb.mean(0)).abs()
        se = torch.sqrt(ta.var(0) / ta.shape[0] + tb.var(0) / tb.shape[0]) + 1e-12
        assert (diff / se).max() < 5, (key, (diff / se).max())
    # and the pooled pre-activations at the last layer have the same shape of law
    assert abs(a.h_kurt[-1] - b.h_kurt[-1]) < 0.1


def test_gram_handles_rank_deficient_gram_matrices():
    cfg = ensemble.MLPConfig(depth=4, width=16, act="relu", sigma_w=1.4, n_nets=3, init="he_normal")
    tr = ensemble.propagate_mlp(torch.randn(40, 8), cfg, generator=runtime.generator(0, "cpu"), method="gram", device="cpu")
    assert torch.isfinite(tr.q).all()


def test_gram_rejects_invalid_settings():
    cfg = ensemble.MLPConfig(depth=2, width=16, act="tanh", init="orthogonal")
    with pytest.raises(ValueError, match="method='gram' needs"):
        ensemble.propagate_mlp(torch.randn(4, 8), cfg, method="gram", device="cpu")
    cfg = ensemble.MLPConfig(depth=2, width=16, act="tanh")
    with pytest.raises(ValueError, match="method='gram' needs"):
        ensemble.propagate_mlp(torch.randn(4, 8), cfg, method="gram", backward=True, device="cpu")
    with pytest.raises(ValueError, match="method must be"):
        ensemble.propagate_mlp(torch.randn(4, 8), cfg, method="fast", device="cpu")
