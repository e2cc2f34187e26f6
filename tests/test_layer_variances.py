"""Properties of sigprop.meanfield.layer_variances (per-layer forward and backward variances).

* With one sigma_w for every layer it is iterate_q, shifted by the first (linear) layer.
* Linear networks: the closed forms of Glorot & Bengio (2010, eqs. 5-6), for unequal
  widths too; relu: the factor sigma_w^2 / 2 per layer of He et al. (2015).
* It predicts propagate_mlp's q, qx and grad_q for tanh networks of unequal widths within
  a tolerance set by the spread across independent networks, and the same tolerance
  rejects a theory whose backward width ratio is inverted.
* Bad input raises ValueError.
"""
from __future__ import annotations

import math

import pytest
import torch

from sigprop import ensemble, meanfield as mf


def test_constant_sigma_w_matches_iterate_q():
    sw, sb, q0, depth = 1.3, 0.2, 0.7, 6
    lv = mf.layer_variances("tanh", q0, [sw] * depth, sb)
    q1 = sw**2 * q0 + sb**2
    ref = mf.iterate_q("tanh", q1, sw, sb, depth - 1)
    assert torch.allclose(lv.q, ref, rtol=1e-12)
    assert torch.allclose(lv.qx[:-1] * sw**2 + sb**2, lv.q[1:], rtol=1e-12)


def test_linear_network_closed_forms_with_unequal_widths():
    widths = (50, 200, 100, 400, 25)
    var_w = [2.0 / (a + b) for a, b in zip(widths[:-1], widths[1:])]  # Xavier
    sw = [math.sqrt(n * v) for n, v in zip(widths[:-1], var_w)]
    lv = mf.layer_variances("linear", 1.5, sw, 0.0, widths, grad_var=2.0)
    for l in range(1, 5):  # Var[z^l] = Var[x] prod_{k<l} n_k Var W^k
        assert float(lv.q[l - 1]) == pytest.approx(1.5 * math.prod(widths[k] * var_w[k] for k in range(l)), rel=1e-12)
    for l in range(1, 5):  # Var[dE/dh^l] = Var[dE/dh^L] prod_{k>l} n_k Var W^k
        ref = 2.0 * math.prod(widths[k] * var_w[k - 1] for k in range(l + 1, 5))
        assert float(lv.grad_q[l - 1]) == pytest.approx(ref, rel=1e-12)


def test_relu_variance_changes_by_half_sigma_w_squared_per_layer():
    s2 = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    lv = mf.layer_variances("relu", 1.0, [s2.sqrt()] * 8)
    for l in range(8):
        assert torch.allclose(lv.q[l], s2 * (s2 / 2) ** l, rtol=1e-10)
        assert torch.allclose(lv.grad_q[l], 0.5 * (s2 / 2) ** (7 - l), rtol=1e-10)


def test_broadcasts_over_inputs_and_networks():
    q_in = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)[:, None]  # inputs x networks
    sw = torch.tensor([0.9, 1.1], dtype=torch.float64)
    lv = mf.layer_variances("tanh", q_in, [sw] * 4, 0.1)
    assert lv.q.shape == lv.qx.shape == lv.grad_q.shape == (4, 3, 2)
    one = mf.layer_variances("tanh", 2.0, [1.1] * 4, 0.1)
    assert torch.allclose(lv.q[:, 2, 1], one.q, rtol=1e-12)
    assert torch.allclose(lv.grad_q[:, 2, 1], one.grad_q, rtol=1e-12)


def _simulated_means(trace):
    """Per-network means over inputs: (L, n_nets) for q, grad_q."""
    return trace.q.mean(-1), trace.grad_q.mean(-1)


def test_predicts_propagate_mlp_for_unequal_widths_and_rejects_inverted_ratios():
    n_in, widths = 300, (600, 200, 500, 300)
    x = torch.randn(16, n_in, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cfg = ensemble.MLPConfig(widths=widths, act="tanh", init="xavier_normal", sigma_w=1.2, sigma_b=0.1, n_nets=24)
    tr = ensemble.propagate_mlp(x, cfg, generator=torch.Generator().manual_seed(1), backward=True,
                                device="cpu", dtype=torch.float64)
    q_sim, g_sim = _simulated_means(tr)
    q_in = x.pow(2).mean(-1)
    all_widths = (n_in,) + widths
    lv = mf.layer_variances("tanh", q_in, cfg.effective_sigma_w(n_in), 0.1, all_widths)
    wrong = mf.layer_variances("tanh", q_in, cfg.effective_sigma_w(n_in), 0.1, all_widths[::-1])

    def z_scores(sim, theory):
        se = sim.std(dim=1) / math.sqrt(sim.shape[1])
        return ((sim.mean(dim=1) - theory.mean(-1)) / se).abs()

    assert float(z_scores(q_sim, lv.q).max()) < 5
    assert float(z_scores(g_sim, lv.grad_q).max()) < 5
    assert float(z_scores(g_sim, wrong.grad_q).max()) > 5


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(sigma_w=[]),
        dict(sigma_w=1.0),
        dict(sigma_w=[1.0, 1.0], widths=(10, 10)),
        dict(sigma_w=[1.0, 1.0], widths=(10, 0, 10)),
        dict(sigma_w=[1.0, -1.0]),
        dict(sigma_w=[1.0], q_in=-1.0),
        dict(sigma_w=[1.0], sigma_b=-0.1),
        dict(sigma_w=[1.0], grad_var=float("nan")),
    ],
)
def test_bad_input_raises_value_error(kwargs):
    args = dict(act="tanh", q_in=1.0, sigma_w=[1.0], sigma_b=0.0, widths=None, grad_var=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError):
        mf.layer_variances(**args)


def test_diverging_relu_raises():
    with pytest.raises(ValueError, match="diverges"):
        mf.layer_variances("relu", 1e300, [10.0] * 400)
