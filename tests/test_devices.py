"""The kernels give the same answers on every device, and TF32 stays within sampling noise.

Each test runs on the CPU (which checks the test's own logic on every machine) and, where
CUDA is available, on the GPU too: a session lent a GPU runs `make test` and learns whether
the GPU path agrees with the CPU path, without writing anything new.
"""
import math

import pytest
import torch

from sigprop import ensemble, spectra
from sigprop import meanfield as mf
from sigprop.ensemble import SignalNoiseConfig, propagate_signal_noise

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("dev", DEVICES)
def test_phase_diagram_is_the_same_on_every_device(dev):
    sw = torch.linspace(0.5, 4.0, 40, dtype=torch.float64)
    sb = torch.linspace(0.05, 2.0, 40, dtype=torch.float64)
    ref = mf.phase_diagram("tanh", sw, sb)
    got = mf.phase_diagram("tanh", sw.to(dev), sb.to(dev))
    assert got.q_star.device.type == dev
    assert torch.allclose(got.q_star.cpu(), ref.q_star, rtol=1e-10)
    assert torch.allclose(got.chi_1.cpu(), ref.chi_1, rtol=1e-10)


@pytest.mark.parametrize("dev", DEVICES)
def test_mlp_statistics_follow_the_mean_field_on_every_device(dev):
    """Random streams differ between devices, so the check is in law: the last layer's
    length averaged over networks and inputs is within 4 standard errors of q*."""
    cfg = ensemble.MLPConfig(depth=12, width=512, act="tanh", sigma_w=1.5, sigma_b=0.3, n_nets=8)
    x = torch.randn(16, 512, generator=torch.Generator().manual_seed(0))
    tr = ensemble.propagate_mlp(x, cfg, generator=torch.Generator(device=dev).manual_seed(1), device=dev)
    q = tr.q[-1].double().cpu().reshape(-1)
    q_star = mf.q_star("tanh", 1.5, 0.3)
    se = float(q.std()) / math.sqrt(q.numel())
    assert abs(float(q.mean()) - q_star) < 4 * se + 1e-3 * q_star


@pytest.mark.parametrize("dev", DEVICES)
def test_jacobian_singular_values_are_the_same_on_every_device(dev):
    cfg = ensemble.MLPConfig(depth=6, width=64, act="tanh", sigma_w=1.2, sigma_b=0.1, n_nets=3)
    params = ensemble.mlp_parameters(cfg, 64, generator=torch.Generator().manual_seed(3))
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(4))
    ref = spectra.jacobian_singular_values(cfg, x, parameters=params, device="cpu")
    moved = [(w.to(dev), b.to(dev)) for w, b in params]
    got = spectra.jacobian_singular_values(cfg, x.to(dev), parameters=moved, device=dev)
    assert torch.allclose(got.cpu(), ref.cpu(), rtol=1e-4, atol=1e-5 * float(ref.max()))


@pytest.mark.parametrize("dev", DEVICES)
def test_tf32_convolutions_keep_the_statistics_within_sampling_noise(dev):
    """`allow_tf32=True` (cuDNN TF32, GPU only; a no-op on the CPU) may only be used where the
    recorded moments move by less than their own spread over realizations."""
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    cfg = SignalNoiseConfig("bn_ff", depth=20, width=64, n_nets=8)
    runs = {}
    for tf32 in (False, True):
        runs[tf32] = propagate_signal_noise(x, cfg, generator=torch.Generator().manual_seed(1), device=dev,
                                            allow_tf32=tf32)
    for key in ("nu2", "mu2", "mu4", "mu2_noise"):
        a, b = runs[False].moment(key).log(), runs[True].moment(key).log()
        spread = a.std(dim=1, keepdim=True)  # over realizations, per layer
        assert bool(((a - b).abs() <= 0.25 * spread + 1e-6).all()), key
    chi_a, chi_b = runs[False].chi(), runs[True].chi()
    assert bool(((chi_a.log() - chi_b.log()).abs() <= 0.25 * chi_a.log().std(dim=1, keepdim=True) + 1e-6).all())
