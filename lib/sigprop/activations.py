"""Activation functions with their derivatives, and a registry of them.

Every activation the book uses is an :class:`Activation`: a pointwise function
``phi`` with its derivative ``phi'`` (both ``torch`` functions that broadcast and
run on any device), plus optional closed-form Gaussian kernels used by
:mod:`sigprop.gaussian` as exact references.

Registry names: ``linear, relu, leaky_relu, hard_tanh, tanh, erf, sigmoid, selu,
abs, gelu, swish``.  Users add their own with :func:`register`::

    from sigprop import activations
    activations.register("cube", lambda x: x**3, lambda x: 3 * x**2)

Conventions at kinks: the derivative of ``relu`` at 0 is 0, of ``abs`` at 0 is
0, of ``hard_tanh`` at +-1 is 0 (a measure-zero choice that does not affect any
Gaussian expectation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch

Tensor = torch.Tensor
PointwiseFn = Callable[[Tensor], Tensor]

# SELU constants (Klambauer et al. 2017), to the digits of torch.nn.functional.selu.
SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717
#: Negative-side slope of the registered ``leaky_relu`` (torch's default).
LEAKY_SLOPE = 0.01

__all__ = [
    "Activation",
    "get",
    "register",
    "available",
    "SELU_LAMBDA",
    "SELU_ALPHA",
    "LEAKY_SLOPE",
]


@dataclass(frozen=True)
class Activation:
    """A pointwise activation phi with its derivative phi'.

    Attributes
    ----------
    name:
        Registry name.
    fn:
        ``phi(x)``, elementwise, any shape, any device.
    deriv:
        ``phi'(x)``, elementwise.
    smooth:
        ``True`` when phi is infinitely differentiable.  Kinked activations
        (relu, leaky_relu, hard_tanh, abs) converge more slowly under
        Gauss-Hermite quadrature; :mod:`sigprop.gaussian` documents the error.
    odd:
        ``True`` when phi(-x) = -phi(x); then E[phi(sqrt(q) z)] = 0.
    breakpoints:
        Points where phi or phi' is not smooth (kinks, jumps of phi').  Gaussian
        quadrature splits its panels there, which restores spectral accuracy
        for piecewise-smooth activations.
    tail_from:
        Optional U > 0 beyond which phi and phi' are polynomials of degree at most 1
        (constant or linear tails) up to corrections below 1e-16 of their size:
        for ``|u| > U`` Gaussian quadrature may then use panels that widen
        geometrically (:func:`sigprop.gaussian.expect`), so that its cost no longer
        grows like sqrt(q).  ``None`` (the default for user activations): no such
        claim, uniform panels.
    kernel:
        Optional closed form of the Gaussian kernel
        ``K(q1, q2, q12) = E[phi(u1) phi(u2)]`` for ``(u1, u2)`` centred Gaussian
        with variances ``q1, q2`` and covariance ``q12``.  Used as an exact
        reference in tests and by :func:`sigprop.gaussian.kernel` when
        ``exact=True``.
    """

    name: str
    fn: PointwiseFn
    deriv: PointwiseFn
    smooth: bool = True
    odd: bool = False
    kernel: Optional[Callable[[Tensor, Tensor, Tensor], Tensor]] = field(default=None, compare=False)
    breakpoints: Tuple[float, ...] = ()
    tail_from: Optional[float] = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string; got {self.name!r}")
        for arg in ("fn", "deriv"):
            if not callable(getattr(self, arg)):
                raise ValueError(f"{arg} must be a callable mapping a tensor to a tensor; got {getattr(self, arg)!r}")
        if self.kernel is not None and not callable(self.kernel):
            raise ValueError(f"kernel must be a callable K(q1, q2, q12) or None; got {self.kernel!r}")

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def __repr__(self) -> str:  # short repr for printed tables
        return f"Activation({self.name!r})"


_REGISTRY: Dict[str, Activation] = {}


def register(
    name: str,
    fn: PointwiseFn,
    deriv: PointwiseFn,
    *,
    smooth: bool = True,
    odd: bool = False,
    kernel: Optional[Callable[[Tensor, Tensor, Tensor], Tensor]] = None,
    breakpoints: Sequence[float] = (),
    tail_from: Optional[float] = None,
    overwrite: bool = False,
) -> Activation:
    """Register a user activation ``phi`` with derivative ``phi'`` under ``name``.

    Both callables take and return tensors elementwise.  ``breakpoints`` lists
    the points where phi or phi' has a kink or a jump; declare them for a
    piecewise-smooth activation so that Gaussian expectations stay accurate.  ``tail_from``
    (see :class:`Activation`) declares constant or linear tails beyond ``|u| > tail_from``;
    leave it ``None`` unless that holds to 1e-16.  The derivative is
    checked against a central finite difference at a few points so that a
    wrong derivative fails here rather than silently in a chi_1 computation.

    Raises
    ------
    ValueError
        If ``name`` is empty or already registered (unless ``overwrite``), or if
        ``deriv`` disagrees with the numerical derivative of ``fn``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string; got {name!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"activation {name!r} is already registered; pass overwrite=True to replace it")
    for arg, value in (("fn", fn), ("deriv", deriv)):
        if not callable(value):
            raise ValueError(f"{arg} must be a callable mapping a tensor to a tensor; got {value!r}")
    x = torch.tensor([-2.3, -0.7, 0.31, 1.3, 2.9], dtype=torch.float64)
    h = 1e-6
    num = (fn(x + h) - fn(x - h)) / (2 * h)
    ana = deriv(x)
    if num.shape != x.shape or ana.shape != x.shape:
        raise ValueError("fn and deriv must be elementwise (output shape equal to input shape)")
    if not torch.allclose(num, ana, rtol=1e-4, atol=1e-5):
        raise ValueError(
            f"deriv of activation {name!r} disagrees with the finite difference of fn: "
            f"analytic {ana.tolist()} vs numeric {num.tolist()} at x={x.tolist()}"
        )
    bps = tuple(sorted(float(b) for b in breakpoints))
    if not smooth and not bps:
        raise ValueError(f"breakpoints must be given for the non-smooth activation {name!r} (where phi or phi' jumps)")
    if tail_from is not None:
        ok = isinstance(tail_from, (int, float)) and not isinstance(tail_from, bool) and math.isfinite(tail_from)
        if not ok or tail_from <= max([0.0] + [abs(b) for b in bps]):
            raise ValueError(f"tail_from must be a finite number > 0 and > every |breakpoint| {bps}; got {tail_from!r}")
        tail_from = float(tail_from)
    act = Activation(name, fn, deriv, smooth=smooth and not bps, odd=odd, kernel=kernel, breakpoints=bps,
                     tail_from=tail_from)
    _REGISTRY[name] = act
    return act


def available() -> list[str]:
    """Names of all registered activations, sorted."""
    return sorted(_REGISTRY)


def get(act: Union[str, Activation]) -> Activation:
    """Return the :class:`Activation` for a registry name (or pass one through).

    Raises
    ------
    ValueError
        If ``act`` is neither a registered name nor an :class:`Activation`.
    """
    if isinstance(act, Activation):
        return act
    if isinstance(act, str):
        try:
            return _REGISTRY[act]
        except KeyError:
            raise ValueError(
                f"act must be one of the registered activations {available()} "
                f"(or an Activation object); got {act!r}"
            ) from None
    raise ValueError(f"act must be a registry name (str) or an Activation; got {type(act).__name__}")


# --------------------------------------------------------------------------- #
# Closed-form Gaussian kernels, used as exact references.
# --------------------------------------------------------------------------- #
def _relu_kernel(q1: Tensor, q2: Tensor, q12: Tensor) -> Tensor:
    r"""Arc-cosine kernel of degree 1 (Cho & Saul 2009):

    .. math:: E[\mathrm{relu}(u_1)\mathrm{relu}(u_2)] = \frac{\sqrt{q_1 q_2}}{2\pi}
              \left(\sin\theta + (\pi - \theta)\cos\theta\right),\quad
              \cos\theta = q_{12}/\sqrt{q_1 q_2}.
    """
    s = torch.sqrt(q1 * q2)
    c = torch.clamp(q12 / s, -1.0, 1.0)
    theta = torch.arccos(c)
    return s / (2 * math.pi) * (torch.sin(theta) + (math.pi - theta) * c)


def _erf_kernel(q1: Tensor, q2: Tensor, q12: Tensor) -> Tensor:
    r"""Arcsine kernel (Williams 1997):

    .. math:: E[\mathrm{erf}(u_1)\mathrm{erf}(u_2)] = \frac{2}{\pi}
              \arcsin\frac{2 q_{12}}{\sqrt{(1 + 2 q_1)(1 + 2 q_2)}}.
    """
    return (2 / math.pi) * torch.arcsin(2 * q12 / torch.sqrt((1 + 2 * q1) * (1 + 2 * q2)))


def _linear_kernel(q1: Tensor, q2: Tensor, q12: Tensor) -> Tensor:
    return q12 + 0 * q1 * q2


def _abs_kernel(q1: Tensor, q2: Tensor, q12: Tensor) -> Tensor:
    r"""E|u1||u2| = (2/pi) sqrt(q1 q2) (sqrt(1-c^2) + c arcsin c), c = q12/sqrt(q1 q2)."""
    s = torch.sqrt(q1 * q2)
    c = torch.clamp(q12 / s, -1.0, 1.0)
    return (2 / math.pi) * s * (torch.sqrt(1 - c * c) + c * torch.arcsin(c))


def _leaky_kernel(q1: Tensor, q2: Tensor, q12: Tensor) -> Tensor:
    # leaky(x) = b x + (1-b) relu(x);  E[relu(u1) u2] = q12 / 2.
    b = LEAKY_SLOPE
    return b * b * q12 + b * (1 - b) * q12 + (1 - b) ** 2 * _relu_kernel(q1, q2, q12)


def _step(x: Tensor) -> Tensor:
    return (x > 0).to(x.dtype)


def _selu(x: Tensor) -> Tensor:
    return SELU_LAMBDA * torch.where(x > 0, x, SELU_ALPHA * torch.expm1(torch.clamp(x, max=0.0)))


def _selu_d(x: Tensor) -> Tensor:
    return SELU_LAMBDA * torch.where(x > 0, torch.ones_like(x), SELU_ALPHA * torch.exp(torch.clamp(x, max=0.0)))


_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _gelu(x: Tensor) -> Tensor:
    return 0.5 * x * (1 + torch.erf(x / _SQRT_2))


def _gelu_d(x: Tensor) -> Tensor:
    return 0.5 * (1 + torch.erf(x / _SQRT_2)) + x * _INV_SQRT_2PI * torch.exp(-0.5 * x * x)


def _swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


def _swish_d(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return s + x * s * (1 - s)


def _register_builtins() -> None:
    reg = register
    # tail_from: beyond it the tails are constant or linear to 1e-16 (exactly, for the piecewise
    # linear ones; tanh: 1 - tanh(20) = 8e-18; erf: erfc(8) = 1e-29; sigmoid and swish: e^-40 = 4e-18;
    # gelu: Phi(-10) = 8e-24; selu: e^-40).
    reg("linear", lambda x: x, torch.ones_like, odd=True, kernel=_linear_kernel, tail_from=1.0)
    reg("relu", torch.relu, _step, smooth=False, kernel=_relu_kernel, breakpoints=(0.0,), tail_from=1.0)
    reg(
        "leaky_relu",
        lambda x: torch.where(x > 0, x, LEAKY_SLOPE * x),
        lambda x: torch.where(x > 0, torch.ones_like(x), torch.full_like(x, LEAKY_SLOPE)),
        smooth=False,
        kernel=_leaky_kernel,
        breakpoints=(0.0,),
        tail_from=1.0,
    )
    reg(
        "hard_tanh",
        lambda x: torch.clamp(x, -1.0, 1.0),
        lambda x: (x.abs() < 1).to(x.dtype),
        smooth=False,
        odd=True,
        breakpoints=(-1.0, 1.0),
        tail_from=2.0,
    )
    reg("tanh", torch.tanh, lambda x: 1 - torch.tanh(x) ** 2, odd=True, tail_from=20.0)
    reg(
        "erf",
        torch.erf,
        lambda x: (2 / math.sqrt(math.pi)) * torch.exp(-x * x),
        odd=True,
        kernel=_erf_kernel,
        tail_from=8.0,
    )
    reg("sigmoid", torch.sigmoid, lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x)), tail_from=40.0)
    reg("selu", _selu, _selu_d, smooth=False, breakpoints=(0.0,), tail_from=40.0)
    reg("abs", torch.abs, torch.sign, smooth=False, odd=False, kernel=_abs_kernel, breakpoints=(0.0,), tail_from=1.0)
    reg("gelu", _gelu, _gelu_d, tail_from=10.0)
    reg("swish", _swish, _swish_d, tail_from=45.0)


_register_builtins()
