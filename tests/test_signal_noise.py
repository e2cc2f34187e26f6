"""Properties of sigprop.ensemble.propagate_signal_noise (Labatie 2019's signal and noise).

* The noise is the Jacobian-vector product of the very network the signal goes
  through (torch.func.jvp, and a float64 central difference) for vanilla,
  batch-normalized and residual, convolutional and fully connected networks, with
  batch normalization in test mode: the signal's statistics, treated as constants.
* Batch normalization divides the noise by the signal's standard deviation and does
  not centre it; the convolutions are periodic (circular shifts commute with the
  network); the internal rescaling of signal and noise is exact.
* The recorded moments, sensitivities and effective ranks equal a direct computation
  with sigprop.stats on the same tensors; He initialization keeps the second moments
  of signal and noise constant in expectation; the ReLU step after batch
  normalization matches its prediction.
* Memory does not grow with depth; runs are deterministic; bad input raises
  ValueError naming the argument and its range.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch.func import jvp

from sigprop import stats
from sigprop import moment_theory
from sigprop.ensemble import SignalNoiseConfig, prepare_inputs, propagate_signal_noise, signal_noise_parameters

CPU = torch.device("cpu")
F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- #
# A plain reference network, one realization at a time, in float64.
# --------------------------------------------------------------------------- #
def circ_conv(x, w, stride=1):
    pad = (w.shape[-1] - 1) // 2
    if pad:
        x = F.pad(x, (pad, pad, pad, pad), mode="circular")
    return F.conv2d(x, w, stride=stride)


def bn_frozen(y, eps):
    """Test-mode BN: the statistics are constants (no tangent flows through them)."""
    mean = y.mean((0, 2, 3), keepdim=True).detach()
    var = y.var((0, 2, 3), unbiased=False, keepdim=True).detach()
    return (y - mean) / torch.sqrt(var + eps)


def reference_network(cfg, params, r, bn=bn_frozen):
    """x -> x^L for realization r, as (B, N, H, W) (images) or (B, N, 1, 1) (vectors)."""
    convs = [w[r] for w in params["convs"]]
    stem = params["stem"][r]

    def f(x):
        if cfg.fully_connected:
            x = x.reshape(x.shape[0], -1, 1, 1)
        h = circ_conv(x, stem, cfg.stem_stride)
        it = iter(convs)
        for _ in range(cfg.depth):
            if cfg.arch == "bn_res":
                q = h
                for _ in range(cfg.res_depth):
                    q = circ_conv(torch.relu(bn(q, cfg.epsilon)), next(it))
                h = h + q
            else:
                y = circ_conv(h, next(it))
                if cfg.arch == "bn_ff":
                    y = bn(y, cfg.epsilon)
                h = torch.relu(y)
        return h

    return f


def run_capture(x, cfg, noise, seed=1, **kw):
    """Propagate in float64 and keep every site's tensors (via the callback)."""
    seen = {}

    def cb(layer, site, s, d):
        seen[(layer, site)] = (s.clone(), d.clone())

    tr = propagate_signal_noise(x, cfg, noise=noise, generator=gen(seed), device=CPU, dtype=F64, callback=cb, **kw)
    return tr, seen


CASES = [
    dict(arch="vanilla"), dict(arch="bn_ff"), dict(arch="bn_res"),
    dict(arch="vanilla", fully_connected=True), dict(arch="bn_ff", fully_connected=True),
    dict(arch="bn_res", fully_connected=True), dict(arch="bn_res", res_depth=3, kernel_size=5),
]


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # inside torch.func
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_noise_is_the_jacobian_vector_product_of_the_network(case):
    cfg = SignalNoiseConfig(depth=3, width=5, n_nets=2, **case)
    x = torch.randn(2, 6, 3, 8, 8, generator=gen(10), dtype=F64)
    dx = torch.randn(2, 6, 3, 8, 8, generator=gen(11), dtype=F64)
    _, seen = run_capture(x, cfg, dx)
    params = signal_noise_parameters(cfg, 3 * 64 if cfg.fully_connected else 3, generator=gen(1), device=CPU, dtype=F64)
    for r in range(2):
        f = reference_network(cfg, params, r)
        out, tangent = jvp(f, (x[r],), (dx[r],))
        sig, noi = seen[(cfg.depth, "out")]
        torch.testing.assert_close(sig[r], out, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(noi[r], tangent, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("arch", ["bn_ff", "bn_res"])
def test_noise_equals_a_central_difference_with_frozen_statistics(arch):
    cfg = SignalNoiseConfig(arch, depth=2, width=6, n_nets=1, epsilon=1e-3)
    x = torch.randn(1, 8, 3, 8, 8, generator=gen(3), dtype=F64)
    dx = torch.randn(1, 8, 3, 8, 8, generator=gen(4), dtype=F64)
    _, seen = run_capture(x, cfg, dx)
    params = signal_noise_parameters(cfg, 3, generator=gen(1), device=CPU, dtype=F64)
    # Freeze every BN's statistics at x: record them on a pass at x, replay them at x +- h dx.
    recorded = []

    def recording(y, eps):
        mean, var = y.mean((0, 2, 3), keepdim=True), y.var((0, 2, 3), unbiased=False, keepdim=True)
        recorded.append((mean, var))
        return (y - mean) / torch.sqrt(var + eps)

    def replay_at(point):
        queue = list(recorded)

        def replaying(y, eps):
            mean, var = queue.pop(0)
            return (y - mean) / torch.sqrt(var + eps)

        return reference_network(cfg, params, 0, bn=replaying)(point)

    reference_network(cfg, params, 0, bn=recording)(x[0])
    h = 1e-6
    plus, minus = replay_at(x[0] + h * dx[0]), replay_at(x[0] - h * dx[0])
    fd = (plus - minus) / (2 * h)
    torch.testing.assert_close(seen[(2, "out")][1][0], fd, rtol=1e-6, atol=1e-7)


def test_batch_norm_rescales_the_noise_without_centring_it():
    cfg = SignalNoiseConfig("bn_ff", depth=1, width=8, n_nets=1, epsilon=1e-3)
    x = torch.randn(1, 16, 3, 8, 8, generator=gen(5), dtype=F64)
    dx = torch.ones_like(x)  # a constant noise: its image under the conv is far from centred
    _, seen = run_capture(x, cfg, dx)
    y, dy = seen[(1, "y")]
    z, dz = seen[(1, "z")]
    sigma = torch.sqrt(y.var((1, 3, 4), unbiased=False, keepdim=True) + 1e-3)  # the signal's, per channel
    torch.testing.assert_close(z, (y - y.mean((1, 3, 4), keepdim=True)) / sigma)
    torch.testing.assert_close(dz, dy / sigma)  # rescaled, not centred
    assert dz.mean((1, 3, 4)).abs().max() > 0.1  # the noise keeps its channel means
    assert z.mean((1, 3, 4)).abs().max() < 1e-10


def test_convolutions_are_periodic_shift_equivariant():
    cfg = SignalNoiseConfig("bn_res", depth=3, width=6, n_nets=2)
    x = torch.randn(2, 4, 3, 16, 16, generator=gen(6), dtype=F64)
    dx = torch.randn(2, 4, 3, 16, 16, generator=gen(7), dtype=F64)
    tr, seen = run_capture(x, cfg, dx)
    shift = lambda t, s: torch.roll(t, shifts=(s, s), dims=(-2, -1))  # noqa: E731
    tr2, seen2 = run_capture(shift(x, 4), cfg, shift(dx, 4))  # the stem has stride 2: 4 pixels -> 2
    s, d = seen[(3, "out")]
    s2, d2 = seen2[(3, "out")]
    torch.testing.assert_close(s2, shift(s, 2))
    torch.testing.assert_close(d2, shift(d, 2))
    torch.testing.assert_close(tr2.chi(), tr.chi())


def test_internal_rescaling_is_exact():
    # chi does not see the scale of the noise; a vanilla ReLU net is positively homogeneous.
    cfg = SignalNoiseConfig("vanilla", depth=30, width=8, n_nets=2)
    x = torch.randn(2, 4, 3, 8, 8, generator=gen(8), dtype=F64)
    dx = torch.randn(2, 4, 3, 8, 8, generator=gen(9), dtype=F64)
    a = propagate_signal_noise(x, cfg, noise=dx, generator=gen(1), device=CPU, dtype=F64)
    b = propagate_signal_noise(1e8 * x, cfg, noise=1e-30 * dx, generator=gen(1), device=CPU, dtype=F64)
    torch.testing.assert_close(b.chi(), a.chi(), rtol=1e-9, atol=0)
    torch.testing.assert_close(b.moment("nu2"), 1e16 * a.moment("nu2"), rtol=1e-9, atol=0)
    torch.testing.assert_close(b.moment("mu4"), 1e32 * a.moment("mu4"), rtol=1e-9, atol=0)
    torch.testing.assert_close(b.moment("mu2_noise"), 1e-60 * a.moment("mu2_noise"), rtol=1e-9, atol=0)


@pytest.mark.parametrize("arch", ["vanilla", "bn_ff", "bn_res"])
def test_moments_equal_a_direct_computation(arch):
    cfg = SignalNoiseConfig(arch, depth=4, width=6, n_nets=3)
    x = prepare_inputs(torch.rand(20, 3, 16, 16, generator=gen(12)), 3, 5, generator=gen(13)).double()
    dx = torch.randn(x.shape, generator=gen(14), dtype=F64)
    tr, seen = run_capture(x, cfg, dx, reff_every=2)
    direct_in = [stats.central_moment(x[r].transpose(0, 1).reshape(3, -1), 2, -1).mean() for r in range(3)]
    torch.testing.assert_close(tr.inputs["mu2"], torch.stack(direct_in))
    torch.testing.assert_close(tr.inputs["mu2"], torch.ones(3, dtype=F64))  # prepare_inputs standardizes
    for (layer, site), (s, d) in seen.items():
        if layer == 0:
            continue
        per_channel = s.transpose(1, 2).reshape(3, cfg.width, -1)  # (R, N, B*H*W)
        expect = {
            "nu1_abs": stats.abs_moment(per_channel, 1, dim=(-2, -1)),
            "nu2": stats.raw_moment(per_channel, 2, dim=(-2, -1)),
            "mu2": stats.central_moment(per_channel, 2, -1).mean(-1),
            "mu4": stats.central_moment(per_channel, 4, -1).mean(-1),
            "mu2_noise": stats.raw_moment(d.reshape(3, -1), 2, -1),
        }
        for key, val in expect.items():
            torch.testing.assert_close(tr.moment(key, site)[layer - 1], val, rtol=1e-10, atol=1e-14)
        chi = torch.sqrt(expect["mu2_noise"] / expect["mu2"]) / tr.chi_input
        torch.testing.assert_close(tr.chi(site)[layer - 1], chi)
        if site == cfg.reff_site and layer % 2 == 0:
            feats = s.permute(0, 1, 3, 4, 2).reshape(3, -1, cfg.width)
            noise = d.permute(0, 1, 3, 4, 2).reshape(3, -1, cfg.width)
            i = tr.reff_depth.tolist().index(layer)
            torch.testing.assert_close(tr.reff_signal[i], stats.effective_rank(feats))
            torch.testing.assert_close(tr.reff_noise[i], stats.effective_rank(noise, center=False))
    # the increments multiply as documented
    if arch != "vanilla":
        torch.testing.assert_close(tr.delta_chi("bn") * tr.delta_chi("act"), tr.delta_chi("block"))
    total = torch.cumprod(tr.delta_chi("total"), 0) * tr.chi_stem
    torch.testing.assert_close(total, tr.chi())


def test_he_initialization_conserves_second_moments_in_expectation():
    # Labatie 2019, Theorem 1: E[nu2(x^l) | x^{l-1}] = nu2(x^{l-1}), and likewise mu2(dx).
    cfg = SignalNoiseConfig("vanilla", depth=3, width=16, n_nets=600, fully_connected=True)
    x = prepare_inputs(torch.rand(64, 3, 8, 8, generator=gen(15)), 600, 16, generator=gen(16))
    tr = propagate_signal_noise(x, cfg, generator=gen(17), device=CPU)
    prev = torch.cat([tr.stem["nu2"][None], tr.moment("nu2")[:-1]])
    prev_n = torch.cat([tr.stem["mu2_noise"][None], tr.moment("mu2_noise")[:-1]])
    for ratio in (tr.moment("nu2") / prev, tr.moment("mu2_noise") / prev_n):
        m, se = ratio.mean(1), ratio.std(1) / math.sqrt(600)
        assert torch.all((m - 1).abs() < 4 * se), (m, se)


def test_activation_step_after_batch_norm_matches_its_prediction():
    # At small depth z is nearly Gaussian: delta_phi chi ~ sqrt(pi / (pi - 1)) = 1.2112,
    # and the nu1(|z|) formula holds layer by layer to about 1 %.
    cfg = SignalNoiseConfig("bn_ff", depth=4, width=64, n_nets=4, fully_connected=True)
    x = prepare_inputs(torch.rand(400, 3, 8, 8, generator=gen(18)), 4, 256, generator=gen(19))
    tr = propagate_signal_noise(x, cfg, generator=gen(20), device=CPU)
    measured = tr.delta_chi("act")
    predicted = moment_theory.activation_increment(tr.moment("nu1_abs", "z"))
    assert torch.all((measured / predicted - 1).abs() < 0.02), (measured, predicted)
    assert abs(measured.mean().item() - moment_theory.GAUSSIAN_ACTIVATION_INCREMENT) < 0.03


def test_runs_are_deterministic_and_chunks_are_independent_runs():
    cfg = SignalNoiseConfig("bn_res", depth=3, width=4, n_nets=4)
    x = torch.randn(4, 3, 8, 8, generator=gen(21))
    a = propagate_signal_noise(x, cfg, generator=gen(2), device=CPU, reff_every=1)
    b = propagate_signal_noise(x, cfg, generator=gen(2), device=CPU, reff_every=1)
    c = propagate_signal_noise(x, cfg, generator=gen(2), device=CPU, reff_every=1, chunk=4)
    for t in (b, c):
        torch.testing.assert_close(t.chi(), a.chi(), rtol=0, atol=0)
        torch.testing.assert_close(t.reff_signal, a.reff_signal, rtol=0, atol=0)
    d = propagate_signal_noise(x, cfg, generator=gen(2), device=CPU, chunk=1)
    assert d.chi().shape == (3, 4) and not torch.equal(d.chi(), a.chi())
    assert len(set(d.chi()[-1].tolist())) == 4  # four different networks


def test_thread_setting_is_restored():
    cfg = SignalNoiseConfig("vanilla", depth=2, width=4, n_nets=1)
    before = torch.get_num_threads()
    propagate_signal_noise(torch.randn(4, 3, 8, 8), cfg, device=CPU, threads=1)
    assert torch.get_num_threads() == before
    propagate_signal_noise(torch.randn(4, 3, 8, 8), cfg, device=CPU, threads=None)
    assert torch.get_num_threads() == before


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, torch
    torch.set_num_threads(1)
    from sigprop.ensemble import SignalNoiseConfig, propagate_signal_noise
    depth = int(sys.argv[1])
    # one tensor of signal and noise: 2 * 64 * 32 * 32 * 16 floats = 8 MB
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    def run(d):
        cfg = SignalNoiseConfig("bn_res", depth=d, width=16, stem_stride=1, n_nets=1)
        propagate_signal_noise(x, cfg, generator=torch.Generator().manual_seed(1), device="cpu")
    run(2)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run(depth)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_mb": (after - before) / 1024}))
    """
)


def test_memory_does_not_grow_with_depth():
    # Keeping each unit's output would add 8 MB a unit: 224 MB at 30 units.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, "30"], capture_output=True, text=True,
                         check=True, env=env, timeout=600)
    growth = json.loads(out.stdout.strip().splitlines()[-1])["growth_mb"]
    assert growth < 20, growth  # allocator slack only


# --------------------------------------------------------------------------- #
# Theory helpers and fits.
# --------------------------------------------------------------------------- #
def test_theory_helpers():
    assert moment_theory.activation_increment(moment_theory.GAUSSIAN_NU1_ABS) == pytest.approx(
        math.sqrt(math.pi / (math.pi - 1)), rel=1e-14)
    assert moment_theory.GAUSSIAN_ACTIVATION_INCREMENT == pytest.approx(1.2112, abs=1e-4)
    assert moment_theory.resnet_exponent(1.2, 2) == pytest.approx((1.2**4 - 1) / 2)
    t = moment_theory.resnet_exponent(torch.tensor([1.0, 1.1]), 1)
    torch.testing.assert_close(t, torch.tensor([0.0, (1.21 - 1) / 2], dtype=F64))
    assert moment_theory.vanilla_log_moment_diffusion(128) == (5 / 128, 1 / 128)


def test_fits_recover_known_laws():
    l = torch.arange(1, 101, dtype=F64)
    gamma, a = stats.fit_exponential_rate(l, 3.0 * torch.exp(0.17 * l))
    assert gamma == pytest.approx(0.17) and a == pytest.approx(math.log(3.0))
    tau, c = stats.fit_power_law(l, 2.0 * l**0.55)
    assert tau == pytest.approx(0.55) and c == pytest.approx(2.0)
    tau, c = stats.fit_power_law(l, 2.0 * l**0.55, exponent=0.55)
    assert tau == 0.55 and c == pytest.approx(2.0)
    torch.testing.assert_close(stats.normalized_sensitivity(4.0, 1.0, 2.0, 2.0), torch.tensor(2.0, dtype=F64))


# --------------------------------------------------------------------------- #
# Errors.
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("kwargs, match", [
    (dict(arch="resnet", depth=2, width=4), "arch must be one of"),
    (dict(arch="bn_ff", depth=0, width=4), "depth must be an integer >= 1"),
    (dict(arch="bn_ff", depth=2, width=2.5), "width must be an integer >= 1"),
    (dict(arch="bn_ff", depth=2, width=4, kernel_size=4), "kernel_size must be an odd integer >= 1"),
    (dict(arch="bn_ff", depth=2, width=4, epsilon=-1e-3), r"epsilon must be in \[0, inf\]; got -0.001"),
    (dict(arch="bn_ff", depth=2, width=4, sigma_w2=0.0), r"sigma_w2 must be in \(0, inf\]; got 0.0"),
    (dict(arch="bn_res", depth=2, width=4, res_depth=0), "res_depth must be an integer >= 1"),
    (dict(arch="bn_ff", depth=2, width=4, n_nets=0), "n_nets must be an integer >= 1"),
    (dict(arch="bn_ff", depth=2, width=4, stem_stride=0), "stem_stride must be an integer >= 1"),
    (dict(arch="bn_ff", depth=2, width=4, fully_connected=True, kernel_size=5), "fully connected"),
    (dict(arch="bn_ff", depth=2, width=4, fully_connected="yes"), "fully_connected must be True or False"),
])
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SignalNoiseConfig(**kwargs)


def test_bad_propagate_arguments_raise():
    cfg = SignalNoiseConfig("bn_ff", depth=2, width=4, n_nets=2)
    x = torch.randn(4, 3, 8, 8)
    run = lambda *a, **k: propagate_signal_noise(*a, device=CPU, **k)  # noqa: E731
    with pytest.raises(ValueError, match=r"x must have shape \(B, C, H, W\)"):
        run(torch.randn(4, 8, 8), cfg)
    with pytest.raises(ValueError, match="x has 3 realizations on its first axis; config.n_nets is 2"):
        run(torch.randn(3, 4, 3, 8, 8), cfg)
    with pytest.raises(ValueError, match="batch of at least 2"):
        run(torch.randn(1, 3, 8, 8), cfg)
    with pytest.raises(ValueError, match="noise must have x's shape"):
        run(x, cfg, noise=torch.randn(4, 3, 8, 4))
    with pytest.raises(ValueError, match="reff_every must be an integer >= 0"):
        run(x, cfg, reff_every=-1)
    with pytest.raises(ValueError, match="chunk must be an integer >= 1"):
        run(x, cfg, chunk=0)
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        run(x, cfg, threads=0)
    with pytest.raises(ValueError, match="spatial size"):
        run(torch.randn(4, 3, 2, 2), SignalNoiseConfig("bn_ff", depth=2, width=4, n_nets=2, stem_stride=1))
    with pytest.raises(ValueError, match="config must be a SignalNoiseConfig"):
        run(x, {"arch": "bn_ff"})
    tr = run(x, cfg)
    with pytest.raises(ValueError, match=r"step must be one of \('total', 'block', 'bn', 'act', 'conv'\)"):
        tr.delta_chi("relu")
    with pytest.raises(ValueError, match="site must be one of"):
        tr.chi("x")
    with pytest.raises(ValueError, match="key must be one of"):
        tr.moment("nu3")
    with pytest.raises(ValueError, match="batch must be in 2..n_images"):
        prepare_inputs(torch.rand(5, 3, 8, 8), 2, 6)
    with pytest.raises(ValueError, match="downsample must divide"):
        prepare_inputs(torch.rand(5, 3, 8, 8), 2, 3, downsample=3)
    with pytest.raises(ValueError, match=r"nu1_abs must lie in \[0, sqrt\(2\)\)"):
        moment_theory.activation_increment(1.5)
    with pytest.raises(ValueError, match="res_depth must be an integer >= 1"):
        moment_theory.resnet_exponent(1.2, 0)
    with pytest.raises(ValueError, match="mean_increment must be finite and > 0"):
        moment_theory.resnet_exponent(-1.0)
    with pytest.raises(ValueError, match="width must be an integer >= 1"):
        moment_theory.vanilla_log_moment_diffusion(0)
    with pytest.raises(ValueError, match="values must be finite and > 0"):
        stats.fit_exponential_rate([1, 2, 3], [1.0, -1.0, 2.0])
    with pytest.raises(ValueError, match="depth and values must be 1-D of the same length"):
        stats.fit_power_law([1, 2, 3], [1.0, 2.0])


def test_the_old_path_of_moment_theory_still_works_with_a_deprecation_warning():
    import importlib
    import sys

    sys.modules.pop("sigprop.ensemble.moment_theory", None)
    with pytest.warns(DeprecationWarning, match="sigprop.moment_theory"):
        old = importlib.import_module("sigprop.ensemble.moment_theory")
    assert old.resnet_exponent is moment_theory.resnet_exponent
