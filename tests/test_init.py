"""Properties of sigprop.init: every sampler's empirical variance matches its
theoretical per-entry variance (within a bound from the sample size), orthogonal
samples are (semi-)orthogonal and Haar, uniform samples respect their bound, a
seed fixes the sample, gains broadcast over networks, and bad input raises."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sigprop import init

NAMES = sorted(init.INITS)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_registry_holds_the_published_initializations():
    assert set(NAMES) == {
        "lecun_normal", "lecun_uniform", "xavier_normal", "xavier_uniform", "standard_uniform",
        "he_normal", "he_uniform", "orthogonal", "gaussian",
    }
    assert init.available() == NAMES
    for name in NAMES:
        assert init.get_init(name) is init.INITS[name]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fans", [(300, 500), (500, 300)])  # (fan_out, fan_in): wide and tall
@pytest.mark.parametrize("gain", [1.0, 1.7])
def test_empirical_variance_matches_weight_variance(name, fans, gain):
    n_out, n_in = fans
    w = init.get_init(name)((4, n_out, n_in), generator=gen(1), device="cpu", gain=gain, dtype=torch.float64)
    m = w.numel()
    theory = init.weight_variance(name, n_in, n_out, gain=gain)
    # The sample variance of m independent entries has relative sd sqrt((2 + kurt)/m);
    # kurt is 0 (normal) or -1.2 (uniform), and orthogonal entries have an exactly fixed
    # sum of squares, so sqrt(2/m) bounds all three.  5 sd: a 10% error in the variance
    # (0.1 >> 5 * sqrt(2/6e5) = 0.009) cannot pass.
    rel = abs(w.var(correction=0).item() / theory - 1)
    assert rel < 5 * math.sqrt(2 / m), (name, rel)
    assert abs(w.mean().item()) < 5 * math.sqrt(theory / m)


def test_weight_variance_formulas():
    assert init.weight_variance("lecun_normal", 300, 500) == pytest.approx(1 / 300)
    assert init.weight_variance("lecun_uniform", 300, 500) == pytest.approx(1 / 300)
    assert init.weight_variance("standard_uniform", 300, 500) == pytest.approx(1 / 900)
    assert init.weight_variance("xavier_normal", 300, 500) == pytest.approx(2 / 800)
    assert init.weight_variance("xavier_uniform", 300, 500) == pytest.approx(2 / 800)
    assert init.weight_variance("he_normal", 300, 500) == pytest.approx(2 / 300)
    assert init.weight_variance("he_uniform", 300, 500, gain=2.0) == pytest.approx(8 / 300)
    assert init.weight_variance("orthogonal", 300, 500) == pytest.approx(1 / 500)
    assert init.weight_variance("gaussian", 300, 500, gain=1.5) == pytest.approx(2.25 / 300)
    v = init.weight_variance("he_normal", 100, 100, gain=torch.tensor([1.0, 2.0]))
    assert torch.allclose(v, torch.tensor([0.02, 0.08]))


@pytest.mark.parametrize(
    "name,bound",
    [
        ("lecun_uniform", lambda i, o: math.sqrt(3 / i)),
        ("standard_uniform", lambda i, o: 1 / math.sqrt(i)),
        ("xavier_uniform", lambda i, o: math.sqrt(6 / (i + o))),
        ("he_uniform", lambda i, o: math.sqrt(6 / i)),
    ],
)
def test_uniform_samplers_fill_exactly_their_interval(name, bound):
    n_out, n_in = 200, 300
    a = 1.3 * bound(n_in, n_out)
    w = init.INITS[name]((2, n_out, n_in), generator=gen(2), device="cpu", gain=1.3, dtype=torch.float64)
    assert w.abs().max().item() <= a * (1 + 1e-12)
    # 120000 uniform draws: the largest |w| is within a*(1 - 1e-3) with probability 1 - e^-120.
    assert w.abs().max().item() > a * (1 - 1e-3)
    assert w.min().item() < 0 < w.max().item()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
@pytest.mark.parametrize("shape", [(5, 64, 64), (3, 20, 50), (3, 50, 20), (2, 3, 7, 7)])
def test_orthogonal_is_orthogonal_in_every_batch_entry(shape, dtype, tol):
    gain = 1.5
    w = init.orthogonal(shape, generator=gen(3), device="cpu", dtype=dtype, gain=gain)
    assert w.shape == shape and w.dtype == dtype
    n_out, n_in = shape[-2:]
    if n_out <= n_in:  # orthonormal rows: W W^T = gain^2 I
        prod, k = w @ w.transpose(-2, -1), n_out
    else:  # orthonormal columns: W^T W = gain^2 I, so |W x| = gain |x|
        prod, k = w.transpose(-2, -1) @ w, n_in
    eye = torch.eye(k, dtype=dtype).expand_as(prod)
    assert torch.allclose(prod / gain**2, eye, atol=tol, rtol=0)


def test_orthogonal_is_haar_distributed():
    # For a Haar matrix of O(n), E tr W = 0 and Var tr W = 1 (Diaconis & Shahshahani 1994).
    # Without the sign fix of the QR factor, Householder QR gives tr Q a bias of order 1.
    n_mat = 4000
    w = init.orthogonal((n_mat, 6, 6), generator=gen(4), device="cpu", dtype=torch.float64)
    tr = torch.diagonal(w, dim1=-2, dim2=-1).sum(-1)
    assert abs(tr.mean().item()) < 5 * math.sqrt(1 / n_mat)
    # Var of the sample variance of tr: (E tr^4 - 1)/n; E tr^4 = 3 for n >= 4.
    assert abs(tr.var().item() - 1) < 5 * math.sqrt(2 / n_mat)
    # Every entry is symmetric about 0 (mean 0, variance 1/n).
    assert abs(w[:, 0, 0].mean().item()) < 5 * math.sqrt(1 / 6 / n_mat)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_the_same_tensor(name):
    f = init.get_init(name)
    a = f((3, 40, 30), generator=gen(7), device="cpu")
    b = f((3, 40, 30), generator=gen(7), device="cpu")
    c = f((3, 40, 30), generator=gen(8), device="cpu")
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.dtype == torch.float32 and a.device.type == "cpu"


@pytest.mark.parametrize("name", NAMES)
def test_tensor_gain_scales_each_network(name):
    f = init.get_init(name)
    gains = torch.tensor([0.5, 1.0, 3.0])
    a = f((3, 40, 30), generator=gen(9), device="cpu", dtype=torch.float64, gain=gains)
    b = f((3, 40, 30), generator=gen(9), device="cpu", dtype=torch.float64)
    assert torch.allclose(a, b * gains[:, None, None], rtol=1e-12, atol=0)


def test_gaussian_is_lecun_normal_with_gain_sigma_w():
    a = init.gaussian((2, 50, 40), 1.7, generator=gen(5), device="cpu")
    b = init.lecun_normal((2, 50, 40), generator=gen(5), device="cpu", gain=1.7)
    c = init.gaussian((2, 50, 40), generator=gen(5), device="cpu", gain=1.7)
    assert torch.allclose(a, b) and torch.allclose(a, c)


def test_sample_lands_on_the_generator_device_by_default():
    w = init.he_normal((4, 3), generator=gen(0))
    assert w.device == torch.device("cpu") and w.shape == (4, 3)


@pytest.mark.parametrize("shape", [(5,), (), (0, 5), (3, -1), (2.5, 3), "ab", None, (2, 0, 3)])
@pytest.mark.parametrize("name", NAMES)
def test_bad_shape_raises(name, shape):
    with pytest.raises(ValueError, match="shape"):
        init.get_init(name)(shape, generator=gen())


@pytest.mark.parametrize("gain", [-1.0, float("nan"), float("inf"), "1", torch.tensor([1.0, -2.0])])
@pytest.mark.parametrize("name", NAMES)
def test_bad_gain_raises(name, gain):
    with pytest.raises(ValueError, match="gain"):
        init.get_init(name)((2, 4, 3), generator=gen(), gain=gain)


def test_gain_that_does_not_broadcast_raises():
    with pytest.raises(ValueError, match="gain"):
        init.he_normal((3, 4, 5), generator=gen(), gain=torch.ones(4))
    with pytest.raises(ValueError, match="gain"):  # would add a dimension
        init.he_normal((4, 5), generator=gen(), gain=torch.ones(3))


def test_other_bad_arguments_raise():
    with pytest.raises(ValueError, match="sigma_w"):
        init.gaussian((4, 5), -0.5, generator=gen())
    with pytest.raises(ValueError, match="dtype"):
        init.he_normal((4, 5), generator=gen(), dtype=torch.int64)
    with pytest.raises(ValueError, match="init must be one of"):
        init.get_init("glorot")
    with pytest.raises(ValueError, match="name must be one of"):
        init.weight_variance("glorot", 3, 4)
    with pytest.raises(ValueError, match="fan_in"):
        init.weight_variance("he_normal", 0, 4)
    with pytest.raises(ValueError, match="fan_out"):
        init.weight_variance("he_normal", 3, 2.5)
    with pytest.raises(ValueError, match="gain"):
        init.weight_variance("he_normal", 3, 4, gain=-1)


def test_weight_variance_matches_torch_nn_init_conventions():
    # torch.nn.init uses the same fan conventions for 2-D weights (fan_in = shape[1]).
    for name, ref in [
        ("xavier_uniform", torch.nn.init.xavier_uniform_),
        ("xavier_normal", torch.nn.init.xavier_normal_),
    ]:
        w = torch.empty(400, 600, dtype=torch.float64)
        ref(w, generator=gen(0))
        assert w.var().item() == pytest.approx(init.weight_variance(name, 600, 400), rel=0.02)
    w = torch.empty(400, 600, dtype=torch.float64)
    torch.nn.init.kaiming_normal_(w, nonlinearity="relu", generator=gen(1))
    assert w.var().item() == pytest.approx(init.weight_variance("he_normal", 600, 400), rel=0.02)
    assert np.isclose(init.weight_variance("he_uniform", 600, 400), 2 / 600)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [7, 1000])
def test_one_pass_normal_draw_equals_randn_times_std(dtype, n):
    """init._sample and the residual-net layers draw N(0, std^2) with normal_(0, std) in one
    pass; on the CPU these are bit for bit the numbers randn(...) * std gave before."""
    std = 0.37
    a = torch.randn((3, n), generator=torch.Generator().manual_seed(11), dtype=dtype) * std
    b = torch.empty((3, n), dtype=dtype).normal_(0.0, std, generator=torch.Generator().manual_seed(11))
    assert torch.equal(a, b)
