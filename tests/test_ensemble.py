"""Properties of sigprop.ensemble.propagate_mlp.

* The per-layer lengths q and correlations c of wide random MLPs follow the
  mean-field recursions (closed-form kernels for relu and erf, sigprop.meanfield
  for tanh) within a tolerance derived from the sample size, and the same
  tolerance rejects a simulation that ignored sigma_b or had its weight variance
  off by 10%.
* One layer of the simulation is unbiased for every initialization:
  E[q^{l+1} | layer l] = n_l Var(W) qx^l + sigma_b^2.
* The statistics, histograms and gradients equal a plain autograd reference on
  the very same weights, for every checkpoint segment length.
* Linear orthogonal networks preserve norms exactly; in linear Gaussian networks
  the gradient variance changes by sigma_w^2 n_l / n_{l-1} per layer.
* Runs are deterministic; forward memory does not grow with depth and backward
  memory grows like sqrt(depth); bad input raises ValueError.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from scipy import special, stats as sps

from sigprop import activations, ensemble, init
from sigprop.ensemble import MLPConfig, propagate_mlp

CPU = torch.device("cpu")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def inputs_with_gram(gram: np.ndarray, n_in: int, seed: int = 0) -> torch.Tensor:
    """Inputs x (batch, n_in) whose Gram matrix x x^T / n_in is exactly ``gram``."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((n_in, gram.shape[0])))
    return torch.tensor(np.linalg.cholesky(gram) @ (math.sqrt(n_in) * basis.T))


# --------------------------------------------------------------------------- #
# Theory: the mean-field kernel recursion, and its finite-width noise.
# --------------------------------------------------------------------------- #
def kernel_map(act: str):
    """(qa, qb, qab) -> E phi(ua) phi(ub) for each pair, exact (closed form or sigprop.meanfield)."""
    a = activations.get(act)
    if a.kernel is not None:
        return lambda qa, qb, qab: a.kernel(*(torch.as_tensor(v, dtype=torch.float64) for v in (qa, qb, qab))).numpy()
    mf = pytest.importorskip("sigprop.meanfield")

    def k(qa, qb, qab):  # the covariance map at sigma_w = 1, sigma_b = 0 is the kernel
        flat = [torch.as_tensor(np.ravel(v), dtype=torch.float64) for v in (qa, qb, qab)]
        return np.asarray(mf.covariance_map(act, *flat, 1.0, 0.0)[2]).reshape(np.shape(qa))

    return k


def mean_field(act, sigma_w, sigma_b, q_in, c_in, depth):
    """q^l_a and c^l_ab, l = 1..depth, of Poole et al. (2016) eqs. (3) and (5).

    Layer 1: q^1_ab = sigma_w^2 (x_a . x_b)/n_in + sigma_b^2; then
    q^{l+1}_ab = sigma_w^2 E[phi(u_a) phi(u_b)] + sigma_b^2, u ~ N(0, q^l).
    """
    k = kernel_map(act)
    qab = sigma_w**2 * c_in * np.sqrt(np.outer(q_in, q_in)) + sigma_b**2
    qs, cs = [], []
    for _ in range(depth):
        d = np.diag(qab).copy()
        qs.append(d)
        cs.append(qab / np.sqrt(np.outer(d, d)))
        qa, qb = np.meshgrid(d, d, indexing="ij")
        qab = sigma_w**2 * k(qa, qb, np.clip(qab, -np.sqrt(qa * qb), np.sqrt(qa * qb))) + sigma_b**2
    return np.array(qs), np.array(cs)


_Z, _W = np.polynomial.hermite_e.hermegauss(80)
_W = _W / math.sqrt(2 * math.pi)
_NP_ACTS = {"relu": lambda u: np.maximum(u, 0.0), "erf": special.erf, "tanh": np.tanh, "linear": lambda u: u}


def _pair_expect(f, qa, qb, qab):
    """E f(ua, ub) by a tensor Gauss-Hermite rule (accurate enough for a noise budget)."""
    c = np.clip(qab / math.sqrt(qa * qb), -1.0, 1.0)
    z1, z2 = np.meshgrid(_Z, _Z, indexing="ij")
    ua = math.sqrt(qa) * z1
    ub = math.sqrt(qb) * (c * z1 + math.sqrt(max(1 - c * c, 0.0)) * z2)
    return float(np.einsum("i,j,ij->", _W, _W, f(ua, ub)))


def noise_sd(act, sigma_w, sigma_b, q_theory, c_theory, a, b, width):
    """Per-network sd of (log q_a, log q_b, c_ab) at each layer, by the linear-noise
    (delta-method) approximation.

    The state is the conditional covariance S^l of layer l's pre-activations given
    layer l-1, in coordinates y = (log S_aa, log S_bb, S_ab / sqrt(S_aa S_bb)).
    S^1 is exact.  S^{l+1} = sigma_w^2 K_hat^l + sigma_b^2, where K_hat^l, the
    average over the n_l units of (phi_a^2, phi_b^2, phi_a phi_b), is unbiased for
    K(S^l) with covariance Cov(...)/n_l (Gaussian quadrature).  Errors propagate
    through the Jacobian J_l of the mean-field map (finite differences):
    P_{l+1} = J_l P_l J_l^T + T_l C_l T_l^T / n_l.  The measured q^l, c^l add an
    independent observation noise: Var(q_hat/S) = 2/n_l and Var(c_hat) = (1-c^2)^2/n_l.
    Errors from different layers are uncorrelated (each layer's weights are fresh),
    so variances add: the accumulation over depth is exact to first order, neither
    sqrt(l) nor l by fiat, but whatever the map's contraction makes of it.
    """
    phi = _NP_ACTS[act]
    w2, b2 = sigma_w**2, sigma_b**2

    def step(y):
        qa, qb = math.exp(y[0]), math.exp(y[1])
        qab = y[2] * math.sqrt(qa * qb)
        na = w2 * _pair_expect(lambda u, v: phi(u) ** 2, qa, qa, qa) + b2
        nb = w2 * _pair_expect(lambda u, v: phi(u) ** 2, qb, qb, qb) + b2
        nab = w2 * _pair_expect(lambda u, v: phi(u) * phi(v), qa, qb, qab) + b2
        return np.array([math.log(na), math.log(nb), nab / math.sqrt(na * nb)])

    depth = len(q_theory)
    p = np.zeros((3, 3))
    out = []
    for l in range(depth):
        qa, qb, c = q_theory[l, a], q_theory[l, b], c_theory[l, a, b]
        obs = np.array([2.0, 2.0, (1 - c * c) ** 2]) / width
        out.append(np.sqrt(np.diag(p) + obs))
        y = np.array([math.log(qa), math.log(qb), c])
        jac = np.empty((3, 3))
        for j in range(3):
            e = np.zeros(3)
            e[j] = 1e-5
            jac[:, j] = (step(y + e) - step(y - e)) / 2e-5
        qab = c * math.sqrt(qa * qb)
        terms = [lambda u, v: phi(u) ** 2, lambda u, v: phi(v) ** 2, lambda u, v: phi(u) * phi(v)]
        mean = np.array([_pair_expect(t, qa, qb, qab) for t in terms])
        second = np.array([[_pair_expect(lambda u, v, s=s, t=t: s(u, v) * t(u, v), qa, qb, qab) for t in terms] for s in terms])
        cov_k = second - np.outer(mean, mean)
        na, nb, nab = w2 * mean + b2
        cn = nab / math.sqrt(na * nb)
        t = w2 * np.array([[1 / na, 0, 0], [0, 1 / nb, 0], [-cn / (2 * na), -cn / (2 * nb), 1 / math.sqrt(na * nb)]])
        p = jac @ p @ jac.T + t @ cov_k @ t.T / width
    return np.array(out)  # (depth, 3)


def pair_noise(trace, act, sigma_w, sigma_b, width):
    """noise_sd for every input pair (a, b), a < b, of a trace, at the simulated parameters."""
    q_th, c_th = mean_field(act, sigma_w, sigma_b, trace.q_in[0].numpy(), trace.c_in[0].numpy(), trace.q.shape[0])
    batch = q_th.shape[1]
    return {(a, b): noise_sd(act, sigma_w, sigma_b, q_th, c_th, a, b, width)
            for a in range(batch) for b in range(a + 1, batch)}


def worst_deviation(trace, act, sigma_w, sigma_b, noise, n_sd=5.0):
    """Largest |measured - theory| / tolerance over layers and input pairs (<= 1 passes).

    The theory is evaluated at (sigma_w, sigma_b); ``noise`` (from :func:`pair_noise`
    at the simulated parameters) sets the tolerance
    n_sd * sd / sqrt(n_nets) + sd^2: the mean over n_nets independent networks of a
    quantity with per-network sd ``sd``, plus a second-order allowance for the bias
    of a nonlinear map (e.g. Jensen's E log q_hat = log S - Var/2).
    """
    n_nets = trace.q.shape[1]
    q_th, c_th = mean_field(act, sigma_w, sigma_b, trace.q_in[0].numpy(), trace.c_in[0].numpy(), trace.q.shape[0])
    logq = torch.log(trace.q).mean(1).numpy()  # (L, batch): mean over networks
    c = trace.c.mean(1).numpy()  # (L, batch, batch)
    worst = 0.0
    for (a, b), sd in noise.items():
        tol = n_sd * sd / math.sqrt(n_nets) + sd**2
        worst = max(
            worst,
            np.max(np.abs(logq[:, a] - np.log(q_th[:, a])) / tol[:, 0]),
            np.max(np.abs(logq[:, b] - np.log(q_th[:, b])) / tol[:, 1]),
            np.max(np.abs(c[:, a, b] - c_th[:, a, b]) / tol[:, 2]),
        )
    return worst


@pytest.mark.parametrize("act,sigma_w,sigma_b", [("relu", 1.2, 0.5), ("erf", 2.0, 0.3), ("tanh", 1.8, 0.2)])
def test_q_and_c_follow_the_mean_field_recursion(act, sigma_w, sigma_b):
    width, depth, n_nets = 1000, 20, 8
    # Three inputs of unequal lengths with correlations 0.9, 0.3, 0.6.
    qs = np.array([0.5, 1.0, 2.0])
    corr = np.array([[1.0, 0.9, 0.3], [0.9, 1.0, 0.6], [0.3, 0.6, 1.0]])
    x = inputs_with_gram(corr * np.sqrt(np.outer(qs, qs)), width)
    cfg = MLPConfig(depth=depth, width=width, act=act, sigma_w=sigma_w, sigma_b=sigma_b, n_nets=n_nets)
    tr = propagate_mlp(x, cfg, generator=gen(11), device=CPU)
    assert torch.allclose(tr.q_in[0], torch.tensor(qs)) and torch.allclose(tr.c_in[0], torch.tensor(corr))
    noise = pair_noise(tr, act, sigma_w, sigma_b, width)
    assert worst_deviation(tr, act, sigma_w, sigma_b, noise) <= 1.0
    # The test is sharp: the same tolerance rejects a simulation that ignored the bias
    # or whose weight variance was 10% off.
    assert worst_deviation(tr, act, sigma_w, 0.0, noise) > 1.0
    assert worst_deviation(tr, act, sigma_w * math.sqrt(1.1), sigma_b, noise) > 1.0
    assert worst_deviation(tr, act, sigma_w * math.sqrt(0.9), sigma_b, noise) > 1.0


@pytest.mark.parametrize(
    "init_name,widths,act,gain",
    [
        ("gaussian", (400,) * 8, "tanh", 1.5),
        ("he_uniform", (500, 300, 400, 300, 500, 300), "relu", 1.0),
        ("xavier_uniform", (500, 300, 400, 300, 500, 300), "tanh", 1.0),
        ("standard_uniform", (300,) * 6, "tanh", 1.0),
        ("lecun_normal", (300,) * 6, "sigmoid", 1.0),
        ("orthogonal", (200, 300, 200, 200), "relu", 1.4),
    ],
)
def test_one_layer_is_unbiased_for_every_init(init_name, widths, act, gain):
    # Given layer l, the entries of h^{l+1} are sums of n_l independent terms with
    # E[h_i^2 | x^l] = n_l Var(W) qx^l + sigma_b^2 exactly, so the ratio
    # r = q^{l+1} / (n_l Var(W) qx^l + sigma_b^2) has mean 1 and relative sd about
    # sqrt(2/n_{l+1}) (Gaussian weights: r ~ chi^2_n / n), independently for every
    # network and layer.  We allow sqrt(3/n) for the non-Gaussian weights.
    sigma_b, n_nets, n_in = 0.2, 8, 200
    cfg = MLPConfig(widths=widths, act=act, sigma_w=gain, sigma_b=sigma_b, init=init_name, n_nets=n_nets)
    x = torch.randn(4, n_in, generator=gen(3))
    tr = propagate_mlp(x, cfg, generator=gen(4), device=CPU)
    sw = cfg.effective_sigma_w(n_in)
    pred = [sw[0] ** 2 * tr.q_in + sigma_b**2] + [sw[l] ** 2 * tr.qx[l - 1] + sigma_b**2 for l in range(1, len(widths))]
    r = (tr.q / torch.stack(pred)).mean(-1)  # (L, n_nets); averaging inputs never widens the spread
    sd = math.sqrt(3 / min(widths) / r.numel())
    assert abs(r.mean().item() - 1) < 5 * sd, (r.mean().item(), sd)
    if init_name == "orthogonal":  # square orthogonal layers without bias would give r = 1 exactly
        assert r.std().item() < math.sqrt(3 / min(widths))


def test_per_network_sigma_grid_in_one_call():
    sw = torch.tensor([0.5, 1.0, 1.5, 2.0])
    sb = torch.tensor([0.0, 0.1, 0.2, 0.3])
    cfg = MLPConfig(depth=3, width=2000, act="erf", sigma_w=sw, sigma_b=sb, n_nets=4)
    x = torch.randn(2, 500, generator=gen(5))
    tr = propagate_mlp(x, cfg, generator=gen(6), device=CPU)
    pred = sw[:, None].double() ** 2 * tr.q_in + sb[:, None].double() ** 2  # q^1 per network
    rel = (tr.q[0] / pred - 1).abs()
    assert rel.max().item() < 5 * math.sqrt(2 / 2000)
    assert cfg.effective_sigma_w(500)[0].tolist() == pytest.approx(sw.tolist())


def test_linear_orthogonal_network_preserves_norms_exactly():
    # Tall first layer (64 x 32, orthonormal columns) then square ones: |h^l_a| = |x_a|.
    cfg = MLPConfig(depth=12, width=64, act="linear", init="orthogonal", n_nets=3)
    x = torch.randn(3, 5, 32, generator=gen(7), dtype=torch.float64)
    tr = propagate_mlp(x, cfg, generator=gen(8), device=CPU, dtype=torch.float64, backward=True)
    norms2 = (x**2).sum(-1)  # (n_nets, batch)
    assert torch.allclose(tr.q * 64, norms2.expand_as(tr.q), rtol=1e-12, atol=0)
    assert torch.allclose(tr.c, tr.c_in.expand_as(tr.c), rtol=0, atol=1e-12)
    # Backward through the square orthogonal layers preserves gradient norms too.
    assert torch.allclose(tr.grad_q[1:], tr.grad_q[-1].expand_as(tr.grad_q[1:]), rtol=1e-12, atol=0)


def test_gradient_variance_changes_by_sigma_w_squared_per_layer():
    # Linear net, Gaussian weights: dE/dx^{l-1} = W^T dE/dh^l has variance
    # sigma_w^2 (n_l / n_{l-1}) Var(dE/dh^l), fresh chi^2 noise of relative variance
    # <= 2/(n_{l-1} n_nets) per layer (inputs are not counted as independent).
    sigma_w, n_nets = 1.3, 4
    widths = (400, 600, 300, 500, 400, 600, 300, 500, 400, 600)
    cfg = MLPConfig(widths=widths, act="linear", sigma_w=sigma_w, n_nets=n_nets)
    x = torch.randn(8, 300, generator=gen(9))
    tr = propagate_mlp(x, cfg, generator=gen(10), device=CPU, backward=True)
    assert torch.allclose(tr.grad_h_var, tr.grad_x_var)  # phi' = 1
    assert abs(tr.grad_x_var[-1].item() - 1) < 5 * math.sqrt(2 / (n_nets * 8 * widths[-1]))  # g ~ N(0, I)
    n = torch.tensor(widths, dtype=torch.float64)
    log_ratio = torch.log(tr.grad_h_var[:-1] / tr.grad_h_var[1:]) - torch.log(sigma_w**2 * n[1:] / n[:-1])
    sd_layer = math.sqrt(2 / (min(widths) * n_nets))
    assert log_ratio.abs().max().item() < 5 * sd_layer
    # Pooled over the 9 layers (independent increments): a 10% error in the factor
    # (log 1.1 = 0.095) would be 9 sd away.
    assert abs(log_ratio.mean().item()) < 5 * sd_layer / 3
    # Weight gradients: dE/dW^l_ij = sum_a g_i(a) x_j(a) with g, x independent in a linear
    # net, so E (dE/dW)^2 = sum_a E g^2 E x^2 (off-diagonal a != b terms average to 0).
    xq = torch.cat([tr.q_in[None], tr.qx[:-1]])  # E x^{l-1}^2 per net and input
    pred = (tr.grad_q * xq).sum(-1).mean(-1)
    assert torch.allclose(tr.grad_w_var, pred, rtol=0.25)


# --------------------------------------------------------------------------- #
# Exactness against an autograd reference on the same weights.
# --------------------------------------------------------------------------- #
def reference(x, params, act, grad_output, bins):
    """Plain forward with every layer stored, backward by torch.autograd."""
    phi = activations.get(act).fn
    hs, xs, ws = [], [x], []
    cur = x
    for w, b in params:
        w = w.clone().requires_grad_(True)
        ws.append(w)
        h = torch.matmul(cur, w.transpose(-2, -1)) + b.unsqueeze(-2)
        h.retain_grad()
        cur = phi(h)
        cur.retain_grad()
        hs.append(h)
        xs.append(cur)
    (cur * grad_output).sum().backward()
    out = {"q": [], "qx": [], "c": [], "h": [], "x": [], "gq": [], "gh": [], "gx": [], "gw": [], "hist": []}
    for h, xl, w in zip(hs, xs[1:], ws):
        hd = h.detach()
        gram = hd @ hd.transpose(-2, -1) / hd.shape[-1]
        d = torch.diagonal(gram, dim1=-2, dim2=-1)
        out["q"].append(d)
        out["qx"].append((xl.detach() ** 2).mean(-1))
        out["c"].append(gram / torch.sqrt(d[..., :, None] * d[..., None, :]))
        a, ax = hd.numpy().ravel(), xl.detach().numpy().ravel()
        out["h"].append([a.mean(), a.var(), sps.kurtosis(a)])
        out["x"].append([ax.mean(), ax.var(), sps.kurtosis(ax)])
        out["gq"].append((h.grad**2).mean(-1))
        out["gh"].append(h.grad.var(correction=0))
        out["gx"].append(xl.grad.var(correction=0))
        out["gw"].append(w.grad.var(correction=0))
        out["hist"].append({k: np.histogram(v, bins)[0] for k, v in
                            [("h", a), ("x", ax), ("grad_h", h.grad.numpy()), ("grad_x", xl.grad.numpy()),
                             ("grad_w", w.grad.numpy())]})
    return out


@pytest.mark.parametrize("checkpoint_every", [None, 1, 2, 3, 5, 7])
@pytest.mark.parametrize("init_name,act,shared_x", [("gaussian", "tanh", True), ("xavier_uniform", "relu", False)])
def test_statistics_and_gradients_equal_autograd_on_the_same_weights(checkpoint_every, init_name, act, shared_x):
    cfg = MLPConfig(widths=(7, 9, 6, 8, 5), act=act, sigma_w=1.4, sigma_b=0.3, init=init_name, n_nets=3)
    n_in, batch = 4, 6
    x = torch.randn(batch, n_in, generator=gen(12), dtype=torch.float64)
    if not shared_x:
        x = torch.randn(3, batch, n_in, generator=gen(13), dtype=torch.float64)
    g_out = torch.randn(3, batch, 5, generator=gen(14), dtype=torch.float64)
    edges = np.linspace(-2.5, 2.5, 11)
    params = ensemble.mlp_parameters(cfg, n_in, generator=gen(15), device=CPU, dtype=torch.float64)
    tr = propagate_mlp(x, cfg, generator=gen(15), device=CPU, dtype=torch.float64, backward=True,
                       grad_output=g_out, hist_layers=[1, 3, 5], bins=torch.tensor(edges),
                       checkpoint_every=checkpoint_every)
    ref = reference(x, params, act, g_out, edges)
    close = dict(rtol=1e-10, atol=1e-12)
    for name, key in [("q", "q"), ("qx", "qx"), ("c", "c"), ("grad_q", "gq")]:
        torch.testing.assert_close(getattr(tr, name), torch.stack(ref[key]), **close)
    for name, key in [("grad_h_var", "gh"), ("grad_x_var", "gx"), ("grad_w_var", "gw")]:
        torch.testing.assert_close(getattr(tr, name), torch.stack(ref[key]), **close)
    mom_h, mom_x = np.array(ref["h"]), np.array(ref["x"])
    for i, s in enumerate(["mean", "var", "kurt"]):
        np.testing.assert_allclose(getattr(tr, "h_" + s).numpy(), mom_h[:, i], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(getattr(tr, "x_" + s).numpy(), mom_x[:, i], rtol=1e-9, atol=1e-12)
    assert tr.hist_layers == (1, 3, 5)
    for k in ensemble.HIST_KEYS:
        want = np.array([ref["hist"][l - 1][k] for l in (1, 3, 5)])
        np.testing.assert_array_equal(tr.hist[k].numpy(), want)


def identity_init(shape, *, generator=None, device=None, dtype=torch.float32, gain=1.0):
    """A deterministic 'init' for tests: W = gain * I (shape must be square)."""
    return gain * torch.eye(shape[-1], device=device, dtype=dtype).expand(shape).clone()


def test_histogram_follows_numpys_bin_rule():
    # Values on interior edges go right, the last edge is in the last bin, outside is dropped.
    cfg = MLPConfig(depth=1, width=1, act="linear", init=identity_init)
    edges = [-1.0, 0.0, 1.0]
    for value, want in [(-1.0, [1, 0]), (0.0, [0, 1]), (1.0, [0, 1]), (1.5, [0, 0]), (-2.0, [0, 0]), (-0.5, [1, 0])]:
        tr = propagate_mlp(torch.tensor([[value]]), cfg, generator=gen(0), device=CPU, hist_layers=[1],
                           bins={"x": edges}, dtype=torch.float64)
        assert tr.hist["x"][0].tolist() == want == np.histogram([value], edges)[0].tolist()
        assert set(tr.hist) == {"x"}


# --------------------------------------------------------------------------- #
# Determinism, memory, time.
# --------------------------------------------------------------------------- #
def test_same_seed_same_trace_with_and_without_backward():
    cfg = MLPConfig(depth=6, width=50, act="tanh", sigma_w=1.5, sigma_b=0.2, n_nets=2)
    x = torch.randn(4, 30, generator=gen(16))
    a = propagate_mlp(x, cfg, generator=gen(17), device=CPU, backward=True)
    b = propagate_mlp(x, cfg, generator=gen(17), device=CPU, backward=True)
    f = propagate_mlp(x, cfg, generator=gen(17), device=CPU)
    for name in ["q", "qx", "c", "h_var", "x_kurt", "grad_q", "grad_h_var", "grad_x_var", "grad_w_var"]:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for name in ["q", "qx", "c", "h_mean", "h_var", "h_kurt", "x_mean", "x_var", "x_kurt"]:
        assert torch.equal(getattr(a, name), getattr(f, name)), name
    assert f.grad_q is None and f.grad_w_var is None
    g = gen(17)
    first = propagate_mlp(x, cfg, generator=g, device=CPU)
    second = propagate_mlp(x, cfg, generator=g, device=CPU)  # the generator advanced: new networks
    assert torch.equal(first.q, f.q) and not torch.equal(first.q, second.q)


def test_different_networks_are_independent():
    # n_nets networks from one call are distinct draws (not one network repeated).
    cfg = MLPConfig(depth=2, width=100, act="tanh", n_nets=4)
    tr = propagate_mlp(torch.randn(3, 50, generator=gen(18)), cfg, generator=gen(19), device=CPU)
    assert len(set(tr.q[0, :, 0].tolist())) == 4


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, torch
    torch.set_num_threads(1)
    from sigprop.ensemble import MLPConfig, propagate_mlp
    depth, backward = int(sys.argv[1]), sys.argv[2] == "1"
    # Activations (n_nets * batch * width = 1M floats = 4 MB a layer) dwarf the weights.
    x = torch.randn(32768, 32, generator=torch.Generator().manual_seed(0))
    def run(d):
        cfg = MLPConfig(depth=d, width=32, act="tanh", sigma_w=1.0, n_nets=1)
        propagate_mlp(x, cfg, generator=torch.Generator().manual_seed(1), device="cpu", backward=backward)
    run(2)  # the peak of a shallow run (one layer's temporaries) is the baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run(depth)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_mb": (after - before) / 1024}))
    """
)
LAYER_MB = 32768 * 32 * 4 / 2**20  # one layer's h (or x): 4 MB


def _peak_growth_mb(depth: int, backward: bool) -> float:
    """Peak-RSS growth of a run at ``depth`` over a run at depth 2, minus the per-layer
    statistics the trace returns by design (q, qx and, with backward, grad_q: float64)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(depth), "1" if backward else "0"],
                         capture_output=True, text=True, check=True, env=env, timeout=300)
    growth = json.loads(out.stdout.strip().splitlines()[-1])["growth_mb"]
    stats_mb = (depth - 2) * 32768 * 8 * (3 if backward else 2) / 2**20
    return growth - stats_mb


def test_forward_memory_does_not_grow_with_depth():
    # Storing every layer's h alone would add 4 MB a layer, 392 MB at depth 100; the
    # on-the-fly reduction keeps one layer alive whatever the depth.
    extra = _peak_growth_mb(100, False)
    assert extra < 10 * LAYER_MB / 4, extra  # 10 MB: allocator slack, far below 98 layers


def test_backward_memory_grows_like_sqrt_depth():
    # Checkpointing keeps about L/k + k = 2 sqrt(L) activations of 4 MB: 16 at L = 64
    # (k = 8) against 4 at L = 2, so ~50 MB more (measured ~80 MB with allocator slack);
    # storing every layer's h would add (64 - 2) * 4 = 248 MB.  The bound sits halfway.
    extra = _peak_growth_mb(64, True)
    assert extra < 0.5 * (64 - 2) * LAYER_MB, extra  # 124 MB


# --------------------------------------------------------------------------- #
# Configuration helpers and errors.
# --------------------------------------------------------------------------- #
def test_config_widths_and_effective_sigma_w():
    cfg = MLPConfig(widths=[1000, 500, 10], act="tanh", init="xavier_uniform")
    assert cfg.depth == 3 and cfg.layer_widths == (1000, 500, 10) and cfg.fan_ins(784) == (784, 1000, 500)
    assert cfg.effective_sigma_w(784)[0] == pytest.approx(math.sqrt(784 * 2 / 1784))
    he = MLPConfig(depth=2, width=100, act="relu", init="he_normal", sigma_w=1.5)
    assert he.effective_sigma_w(100) == pytest.approx([1.5 * math.sqrt(2)] * 2)
    assert MLPConfig(depth=2, width=100, act="relu", sigma_w=1.3).effective_sigma_w(7) == pytest.approx([1.3, 1.3])
    assert MLPConfig(depth=4, width=8, act="relu").layer_widths == (8,) * 4
    with pytest.raises(ValueError, match="named init"):
        MLPConfig(depth=2, width=3, act="relu", init=init.he_normal).effective_sigma_w(3)


def test_custom_init_callable_is_used():
    calls = []

    def ones(shape, *, generator=None, device=None, dtype=torch.float32, gain=1.0):
        calls.append(shape)
        return torch.full(shape, 1.0 / shape[-1], device=device, dtype=dtype) * gain

    cfg = MLPConfig(depth=2, width=3, act="linear", init=ones, n_nets=2)
    tr = propagate_mlp(torch.ones(1, 4), cfg, generator=gen(), device=CPU, dtype=torch.float64)
    assert calls == [(2, 3, 4), (2, 3, 3)]
    assert torch.allclose(tr.q, torch.ones_like(tr.q))


def test_summary_is_a_plain_dict_of_per_layer_lists():
    cfg = MLPConfig(depth=3, width=20, act="tanh", n_nets=2)
    s = propagate_mlp(torch.randn(4, 10, generator=gen()), cfg, generator=gen(1), device=CPU, backward=True).summary()
    assert s["layer"] == [1, 2, 3]
    for k in ["q", "qx", "c", "h_mean", "h_var", "h_kurt", "x_mean", "x_var", "x_kurt", "grad_q", "grad_w_var"]:
        assert isinstance(s[k], list) and len(s[k]) == 3 and all(isinstance(v, float) for v in s[k]), k
    json.dumps(s)


def test_record_c_default_follows_batch_size():
    cfg = MLPConfig(depth=2, width=10, act="tanh")
    assert propagate_mlp(torch.randn(ensemble.C_MAX, 5), cfg, generator=gen(), device=CPU).c is not None
    assert propagate_mlp(torch.randn(ensemble.C_MAX + 1, 5), cfg, generator=gen(), device=CPU).c is None
    assert propagate_mlp(torch.randn(3, 5), cfg, generator=gen(), device=CPU, record_c=False).c is None


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(depth=0, width=10, act="tanh"), "depth"),
        (dict(depth=3, width=0, act="tanh"), "width"),
        (dict(depth=3, width=10, act="tanh", n_nets=0), "n_nets"),
        (dict(depth=3, width=10, act="swoosh"), "act"),
        (dict(depth=3, width=10), "act"),
        (dict(depth=3, width=10, act="tanh", init="glorot"), "init"),
        (dict(depth=3, width=10, act="tanh", sigma_w=-1.0), "sigma_w"),
        (dict(depth=3, width=10, act="tanh", sigma_b=float("nan")), "sigma_b"),
        (dict(depth=3, width=10, act="tanh", sigma_w=[1.0, 2.0], n_nets=3), "sigma_w"),
        (dict(widths=[], act="tanh"), "widths"),
        (dict(widths=[10, 0], act="tanh"), "widths"),
        (dict(widths=[10, 20], depth=3, act="tanh"), "depth"),
        (dict(widths=[10, 20], width=10, act="tanh"), "width"),
    ],
)
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPConfig(**kwargs)


def test_bad_propagate_arguments_raise():
    cfg = MLPConfig(depth=3, width=10, act="tanh", n_nets=2)
    x = torch.randn(4, 5)
    cases = [
        (dict(x=torch.randn(5)), "x must have shape"),
        (dict(x=torch.randn(3, 4, 5)), "n_nets"),
        (dict(x=torch.randn(2, 0, 5)), "x must have shape"),
        (dict(hist_layers=[0], bins=[0.0, 1.0]), "hist_layers"),
        (dict(hist_layers=[4], bins=[0.0, 1.0]), "hist_layers"),
        (dict(hist_layers=[1]), "bins"),
        (dict(hist_layers=[1], bins=[1.0, 0.0]), "bins"),
        (dict(hist_layers=[1], bins=[0.0]), "bins"),
        (dict(hist_layers=[1], bins={"y": [0.0, 1.0]}), "bins keys"),
        (dict(hist_layers=[1], bins={"grad_h": [0.0, 1.0]}), "backward"),
        (dict(grad_output=torch.randn(4, 10)), "backward=True"),
        (dict(backward=True, grad_output=torch.randn(4, 9)), "grad_output"),
        (dict(backward=True, checkpoint_every=0), "checkpoint_every"),
        (dict(dtype=torch.int32), "dtype"),
        (dict(record_c="yes"), "record_c"),
        (dict(config="tanh"), "MLPConfig"),
    ]
    for kwargs, match in cases:
        args = dict(x=x, config=cfg, generator=gen(), device=CPU)
        args.update(kwargs)
        with pytest.raises(ValueError, match=match):
            propagate_mlp(**args)
    with pytest.raises(ValueError, match="n_in"):
        ensemble.mlp_parameters(cfg, 0)


def test_fast_float32_statistics_match_a_float64_two_pass_computation():
    """The reducer's shifted, few-pass statistics of float32 layers (per-row q, pooled mean,
    variance, excess kurtosis) agree with a plain float64 computation, also for data whose
    mean is far from 0 (where raw-moment formulas would cancel)."""
    from sigprop.ensemble._reduce import _moments, _row_q_and_moments

    g = torch.Generator().manual_seed(0)
    for shift in (0.0, 0.5, 30.0):
        t = torch.randn(3, 64, 1000, generator=g) ** 3 * 0.1 + shift
        q, mom = _row_q_and_moments(t)
        td = t.double()
        q_ref = td.square().mean(-1)
        assert ((q - q_ref).abs() / q_ref).max() < 1e-6
        d = td - td.mean()
        ref = torch.stack([td.mean(), d.square().mean(), d.pow(4).mean() / d.square().mean() ** 2 - 3])
        assert abs(mom[0] - ref[0]) < 1e-6 * (1 + abs(shift))
        assert ((mom[1:] - ref[1:]).abs() / ref[1:].abs()).max() < 1e-5


def test_conditional_gaussian_layer_has_the_law_of_a_gaussian_layer():
    # z = W x + b with W_ij ~ N(0, sw^2/N), b_i ~ N(0, sb^2): units i.i.d. N(0, sw^2 |x|^2/N + sb^2)
    from sigprop.ensemble import conditional_gaussian_layer

    x = torch.randn(3, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = conditional_gaussian_layer(x.unsqueeze(1).expand(3, 4000, 50), 1.5, 0.4, generator=torch.Generator().manual_seed(1))
    q = 1.5**2 * x.square().mean(-1) + 0.4**2
    assert z.shape == (3, 4000, 50)
    torch.testing.assert_close(z.var(dim=(1, 2)), q, rtol=0.03, atol=0)


def test_random_layer_is_x_times_the_drawn_weights():
    from sigprop.ensemble import random_layer

    x = torch.randn(2, 3, 6, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(5)
    z = random_layer(x, lambda shape: torch.randn(shape, generator=g), 4, gain=1.3, sigma_b=0.5, generator=g)
    g2 = torch.Generator().manual_seed(5)
    w = torch.randn((2, 4, 6), generator=g2)
    b = torch.randn((2, 1, 4), generator=g2)
    torch.testing.assert_close(z, x @ w.mT * (1.3 / 6**0.5) + 0.5 * b)


def test_layer_sampler_regenerates_the_networks_of_mlp_parameters():
    cfg = MLPConfig(depth=3, width=7, act="tanh", sigma_w=1.2, sigma_b=0.1, init="orthogonal", n_nets=2)
    layers = ensemble.MLPLayerSampler(cfg, 5, generator=gen(8), device=CPU)
    params = ensemble.mlp_parameters(cfg, 5, generator=gen(8), device=CPU)
    for l, (w, b) in enumerate(params, start=1):
        w2, b2 = layers.params(l)
        assert torch.equal(w, w2) and torch.equal(b, b2)
        assert torch.equal(layers.params(l)[0], w2)  # drawn again, bit for bit
    assert not layers.gram_exact
