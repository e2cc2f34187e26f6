"""The activation registry: derivatives, closed-form kernels, user registration, errors."""
import math

import pytest
import torch

from sigprop import activations

REQUIRED = ["linear", "relu", "leaky_relu", "hard_tanh", "tanh", "erf", "sigmoid", "selu", "abs", "gelu", "swish"]


def test_registry_holds_every_required_activation():
    assert set(REQUIRED) <= set(activations.available())


@pytest.mark.parametrize("name", REQUIRED)
def test_derivative_matches_autograd_away_from_kinks(name):
    act = activations.get(name)
    x = torch.linspace(-3.1, 3.3, 97, dtype=torch.float64)
    x = x[(x - 0).abs() > 1e-3]
    x = x[((x.abs() - 1).abs() > 1e-3)]
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(act.fn(xr).sum(), xr)
    assert torch.allclose(act.deriv(x), g, atol=1e-12), name


@pytest.mark.parametrize("name", [n for n in REQUIRED if activations.get(n).odd])
def test_odd_flag_is_true(name):
    act = activations.get(name)
    x = torch.linspace(-3, 3, 31, dtype=torch.float64)
    assert torch.allclose(act.fn(-x), -act.fn(x))


def test_selu_matches_torch_and_is_self_normalising_at_q_one():
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    assert torch.allclose(activations.get("selu").fn(x), torch.nn.functional.selu(x), atol=1e-12)


def test_register_a_user_activation_and_reject_a_wrong_derivative():
    act = activations.register("cube_test", lambda x: x**3, lambda x: 3 * x**2, odd=True, overwrite=True)
    assert activations.get("cube_test") is act
    with pytest.raises(ValueError, match="disagrees"):
        activations.register("bad_test", torch.sin, torch.sin, overwrite=True)
    with pytest.raises(ValueError, match="already registered"):
        activations.register("tanh", torch.tanh, lambda x: 1 - torch.tanh(x) ** 2)
    with pytest.raises(ValueError, match="breakpoints"):
        activations.register("kink_test", torch.relu, lambda x: (x > 0).double(), smooth=False, overwrite=True)


def test_unknown_name_raises_value_error_listing_the_choices():
    with pytest.raises(ValueError, match="act must be one of"):
        activations.get("tanhh")
    with pytest.raises(ValueError, match="registry name"):
        activations.get(3)


def test_closed_form_kernels_at_equal_arguments():
    q = torch.tensor(2.0, dtype=torch.float64)
    assert float(activations.get("relu").kernel(q, q, q)) == pytest.approx(1.0)  # E relu(u)^2 = q/2
    assert float(activations.get("abs").kernel(q, q, q)) == pytest.approx(2.0)
    ref = 2 / math.pi * math.asin(4 / 5)  # E erf(u)^2 = (2/pi) arcsin(2q/(1+2q))
    assert float(activations.get("erf").kernel(q, q, q)) == pytest.approx(ref)


BUILTINS = ["abs", "erf", "gelu", "hard_tanh", "leaky_relu", "linear", "relu", "selu", "sigmoid", "swish", "tanh"]


@pytest.mark.parametrize("name", BUILTINS)
def test_declared_tails_are_constant_or_linear_beyond_tail_from(name):
    """Activation.tail_from lets Gaussian quadrature widen its panels beyond |u| > U; that is
    only exact if phi is affine there and phi' constant (to ~1e-16 of their size). Every
    built-in activation declares its tails."""
    a = activations.get(name)
    assert a.tail_from is not None
    for sign in (1.0, -1.0):
        u = sign * a.tail_from * torch.tensor([1.0, 1.5, 3.0, 10.0, 100.0], dtype=torch.float64)
        d = a.deriv(u)
        assert torch.allclose(d, d[-1].expand_as(d), rtol=0, atol=1e-15), (sign, d)
        p = a.fn(u)
        # phi(u) - phi(U) = phi'(U) (u - U) on an affine tail
        lin = p[0] + d[-1] * (u - u[0])
        assert torch.allclose(p, lin, rtol=1e-14, atol=1e-15), (sign, p - lin)


def test_tail_from_must_be_positive_and_beyond_the_breakpoints():
    kw = dict(smooth=False, breakpoints=(0.0, 2.0), overwrite=True)
    with pytest.raises(ValueError, match="tail_from"):
        activations.register("tail_test", torch.relu, lambda x: (x > 0).double(), tail_from=1.0, **kw)
    with pytest.raises(ValueError, match="tail_from"):
        activations.register("tail_test", torch.relu, lambda x: (x > 0).double(), tail_from=float("nan"), **kw)
    act = activations.register("tail_test", torch.relu, lambda x: (x > 0).double(), tail_from=3.0, **kw)
    assert act.tail_from == 3.0
