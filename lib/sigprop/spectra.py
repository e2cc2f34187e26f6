r"""Singular values of the input-output Jacobian of deep random networks.

For a fully connected network :math:`h^l = W^l x^{l-1} + b^l`, :math:`x^l = \phi(h^l)`,
the input-output Jacobian at an input :math:`x^0` is the product

.. math::

    J = \frac{\partial x^L}{\partial x^0} = D^L W^L D^{L-1} W^{L-1} \cdots D^1 W^1,
    \qquad D^l = \operatorname{diag}\big(\phi'(h^l)\big),

with the :math:`D^l` evaluated on the forward pass of :math:`x^0`.  Its squared
singular values, the eigenvalues :math:`\lambda` of :math:`JJ^\top`, say how much a small
perturbation of the input (or, transposed, a gradient) grows or shrinks along each
direction.  A network is *dynamically isometric* (Pennington et al. 2017) when all of
them stay close to 1 however deep it is.

Mean field gives their first two moments when every layer sits at the length fixed
point :math:`q^*` (Pennington, Schoenholz & Ganguli 2017, 2018).  With
:math:`\mu_k = \mathbb E\,\phi'(\sqrt{q^*} z)^{2k}` and
:math:`\chi_1 = \sigma_w^2 \mu_1`,

.. math::

    m_1 = \mathbb E\,\lambda = \chi_1^L, \qquad
    \frac{\operatorname{Var}\lambda}{m_1^2} = L\Big(\frac{\mu_2}{\mu_1^2} - 1 - s_1\Big),
    \qquad s_1 = \begin{cases} -1 & \text{Gaussian } W,\\ 0 & \text{orthogonal } W. \end{cases}

The second formula holds because :math:`JJ^\top` has the moments of a free product of
the :math:`L` matrices :math:`(D^l)^2` and the :math:`L` matrices :math:`W^l W^{l\top}`,
and the normalized variance :math:`\operatorname{Var}/\text{mean}^2` of a free product is
the sum of those of its factors: :math:`\mu_2/\mu_1^2 - 1` for each :math:`(D^l)^2`,
1 for a square Gaussian (Wishart) :math:`W W^\top` and 0 for an orthogonal one.  At the
edge of chaos, :math:`\chi_1 = 1`, it is the variance itself.  At finite width the overall
gain of each network fluctuates, and the fluctuation compounds over layers; dividing each
network's variance by its own squared mean removes it and gives a much steadier estimate.

.. rubric:: Public API

* :func:`input_output_jacobian` -- the exact Jacobians of ``n_nets`` random MLPs at once.
* :func:`jacobian_singular_values` -- their singular values (float64 SVD).
* :func:`mean_squared_singular_value` -- the theory :math:`\chi_1^L`.
* :func:`jacobian_spectrum_variance` -- the theory for :math:`\operatorname{Var}\lambda`.

Residual networks :math:`x^l = x^{l-1} + \phi(W^l x^{l-1} + b^l)` (Tarnowski et al. 2019):

* :func:`resnet_input_output_jacobian`, :func:`resnet_jacobian_singular_values` -- exact
  Jacobians :math:`\prod_l(\mathbb 1 + D^l W^l)` of random ensembles and their singular values;
* :func:`resnet_spectral_density` -- the universal law of the squared singular values, a
  function of the effective cumulant :math:`a` alone (:mod:`sigprop.resnet_meanfield`);
  :func:`resnet_singular_value_density`, :func:`resnet_spectrum_cdf`, :func:`resnet_ks_distance`;
* :func:`resnet_spectral_edges`, :func:`resnet_condition_number`, :func:`resnet_spectrum_mean`,
  :func:`resnet_spectrum_variance` -- its closed forms.

References
----------
* Pennington, Schoenholz & Ganguli (2017), *Resurrecting the sigmoid in deep learning
  through dynamical isometry: theory and practice*.
* Pennington, Schoenholz & Ganguli (2018), *The emergence of spectral universality in
  deep networks*.
* Saxe, McClelland & Ganguli (2014), *Exact solutions to the nonlinear dynamics of
  learning in deep linear neural networks* (orthogonal initialization).
* Tarnowski, Warchoł, Jastrzębski, Tabor & Nowak (2019), *Dynamical isometry is achieved in
  residual networks in a universal way for any activation function*, AISTATS.
"""
from __future__ import annotations

import math
import numbers
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from . import activations as _acts
from . import init as _init
from . import meanfield as _mf
from . import runtime
from .ensemble import MLPConfig
from .ensemble._common import _draw_seeds
from .ensemble.mlp import _Layers
from .gaussian import expect
from ._checks import check_budget, check_dtype, real_array as _as_t, real_tensor

Tensor = torch.Tensor
Param = Union[float, int, Tensor, np.ndarray]

__all__ = [
    "input_output_jacobian",
    "jacobian_singular_values",
    "mean_squared_singular_value",
    "jacobian_spectrum_variance",
    "WEIGHTS",
    "resnet_spectral_density",
    "resnet_singular_value_density",
    "resnet_spectrum_cdf",
    "resnet_spectral_edges",
    "resnet_condition_number",
    "resnet_spectrum_mean",
    "resnet_spectrum_variance",
    "resnet_ks_distance",
    "resnet_input_output_jacobian",
    "resnet_jacobian_singular_values",
]

#: Weight ensembles with a known free-probability term :math:`s_1` in the variance formula.
WEIGHTS = {"gaussian": -1.0, "orthogonal": 0.0}


# --------------------------------------------------------------------------- #
# Simulation.
# --------------------------------------------------------------------------- #
def _effective_scales(config: MLPConfig, n_in: int) -> Tuple[Tensor, Tensor]:
    """(sigma_w of layer 1 in the mean-field convention, sigma_b), each of shape (n_nets,)."""
    n = config.n_nets
    if isinstance(config.init, str):
        sw = config.effective_sigma_w(n_in)[0]
    else:  # a custom sampler: take sigma_w as the mean-field scale
        sw = config.sigma_w if not isinstance(config.sigma_w, tuple) else torch.tensor(config.sigma_w)
    sw = torch.as_tensor(sw, dtype=torch.float64).expand(n).clone()
    sb = torch.as_tensor(config.sigma_b, dtype=torch.float64).expand(n).clone()
    return sw, sb


def _default_input(config: MLPConfig, n_in: int, generator, device, dtype) -> Tensor:
    """One input per network, of the length that puts layer 1 at the fixed point q*."""
    sw, sb = _effective_scales(config, n_in)
    qs = _mf.q_star(config.activation, sw, sb)
    bad = ~torch.isfinite(qs) | (sw <= 0)
    if bool(bad.any()):
        raise ValueError(
            "x must be given: the length fixed point q* is infinite (or sigma_w = 0) for "
            f"sigma_w = {sw[bad].tolist()}, sigma_b = {sb[bad].tolist()}, so there is no default input length"
        )
    # E q^1 = sigma_w^2 |x|^2 / n_0 + sigma_b^2 = q*  =>  |x|^2 / n_0 = (q* - sigma_b^2) / sigma_w^2
    mean_square = ((qs - sb**2) / sw**2).clamp(min=0.0)
    gen_dev = generator.device if generator is not None else device
    z = torch.randn((config.n_nets, n_in), generator=generator, device=gen_dev, dtype=torch.float64).to(device)
    z = z / z.square().mean(-1, keepdim=True).sqrt()
    return (z * mean_square.to(device).sqrt().unsqueeze(-1)).to(dtype)


def _check_x(x, n_nets: int) -> Tensor:
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"x must be a tensor of shape (n_in,) or (n_nets, n_in); got {type(x).__name__}") from None
    if x.ndim not in (1, 2) or x.shape[-1] < 1 or (x.ndim == 2 and x.shape[0] != n_nets):
        raise ValueError(f"x must have shape (n_in,) or (n_nets, n_in) = ({n_nets}, n_in); got {tuple(x.shape)}")
    if x.is_complex() or not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"x must be real; got dtype {x.dtype}")
    return x


def _check_parameters(parameters, config: MLPConfig, n_in: int) -> List[Tuple[Tensor, Tensor]]:
    try:
        params = [(w, b) for w, b in parameters]
    except (TypeError, ValueError):
        raise ValueError("parameters must be a sequence of (W, b) pairs, as returned by sigprop.ensemble.mlp_parameters") from None
    if len(params) != config.depth:
        raise ValueError(f"parameters must hold depth = {config.depth} (W, b) pairs; got {len(params)}")
    for l, ((w, b), fi, fo) in enumerate(zip(params, config.fan_ins(n_in), config.layer_widths), start=1):
        if tuple(w.shape) != (config.n_nets, fo, fi) or tuple(b.shape) != (config.n_nets, fo):
            raise ValueError(
                f"parameters[{l - 1}] must be W of shape {(config.n_nets, fo, fi)} and b of shape "
                f"{(config.n_nets, fo)}; got {tuple(w.shape)} and {tuple(b.shape)}"
            )
    return params


def input_output_jacobian(
    config: MLPConfig,
    x: Optional[Tensor] = None,
    *,
    parameters: Optional[Sequence[Tuple[Tensor, Tensor]]] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""The exact input-output Jacobians :math:`J = D^L W^L \cdots D^1 W^1` of ``n_nets`` random MLPs.

    The networks are those of :func:`sigprop.ensemble.propagate_mlp` (same
    :class:`~sigprop.ensemble.MLPConfig`, same weights for the same generator state:
    the per-layer seeds are drawn first, exactly as there), and :math:`D^l =
    \operatorname{diag}\,\phi'(h^l)` is taken on the forward pass of ``x``.  The product
    is accumulated layer by layer with batched matmuls, so only one layer's weights are
    alive at a time; the cost is :math:`O(L\,n^3)` per network.

    Parameters
    ----------
    config : MLPConfig
        The ensemble: activation, depth, widths, ``sigma_w``, ``sigma_b``, ``init``
        (``"gaussian"``, ``"orthogonal"`` or any initialization of :mod:`sigprop.init`),
        ``n_nets``.
    x : Tensor, optional
        The input, ``(n_in,)`` shared by all networks or ``(n_nets, n_in)``.  Default:
        one random direction per network with :math:`n_0 = n_1` and the length that
        puts the first layer at the fixed point, :math:`\lVert x\rVert^2/n_0 =
        (q^* - \sigma_b^2)/\sigma_w^2` (so every layer is at :math:`q^*` in mean field).
        It is drawn from ``generator`` after the layer seeds.
    parameters : sequence of (W, b), optional
        Use these weights instead of sampling (e.g. from
        :func:`sigprop.ensemble.mlp_parameters`); ``W^l`` of shape
        ``(n_nets, n_l, n_{l-1})``, ``b^l`` of shape ``(n_nets, n_l)``.
    generator : torch.Generator, optional
        Source of all randomness (torch's global generator when ``None``).
    device : torch.device or str, optional
        Where to compute; default :func:`sigprop.runtime.device`.
    dtype : torch.dtype
        Floating dtype of the forward pass and of the product.

    Returns
    -------
    Tensor
        ``(n_nets, n_L, n_0)``, on ``device``, of ``dtype``.

    Raises
    ------
    ValueError
        If ``config`` is not an :class:`~sigprop.ensemble.MLPConfig`; ``x`` has the wrong
        shape; ``x`` is omitted where :math:`q^*` is infinite (e.g. relu with
        :math:`\sigma_w > \sqrt 2`); ``parameters`` do not match ``config``; or ``dtype``
        is not floating.

    References
    ----------
    Pennington, Schoenholz & Ganguli (2017), eq. (2).
    """
    if not isinstance(config, MLPConfig):
        raise ValueError(f"config must be an MLPConfig; got {type(config).__name__}")
    check_dtype(dtype)
    dev = runtime.device(device) if not isinstance(device, torch.device) else device
    n_nets, depth = config.n_nets, config.depth
    widest = float(max(config.layer_widths))
    # the Jacobian is a product of depth width x width matrices, per network (~1e10 flop/s)
    check_budget(f"input_output_jacobian(depth={depth}, width={int(widest)}, n_nets={n_nets})",
                 seconds=2.0 * depth * widest**3 * n_nets * 1e-11, nbytes=3 * widest**2 * n_nets * 8, device=dev)
    seeds = _draw_seeds(generator, depth) if parameters is None else None
    if x is None:
        n_in = config.layer_widths[0]
        x = _default_input(config, n_in, generator, dev, dtype)
    else:
        x = _check_x(x, n_nets)
        n_in = int(x.shape[-1])
    x = x.to(device=dev, dtype=dtype).expand(n_nets, n_in).unsqueeze(-2)  # (n_nets, 1, n_in)
    if parameters is not None:
        params = _check_parameters(parameters, config, n_in)
        layer = lambda l: tuple(t.to(device=dev, dtype=dtype) for t in params[l - 1])
    else:
        layers = _Layers(config, n_in, seeds, dev, dtype)
        layer = layers.params
    act = config.activation
    jac = None
    with torch.no_grad():
        for l in range(1, depth + 1):
            w, b = layer(l)
            h = torch.matmul(x, w.transpose(-2, -1))
            if b is not None:
                h = h + b.unsqueeze(-2)
            d = act.deriv(h).transpose(-2, -1)  # (n_nets, n_l, 1)
            jac = d * (w if jac is None else torch.matmul(w, jac))
            x = act.fn(h)
            del w, b, h, d
    return jac


def jacobian_singular_values(
    config: MLPConfig,
    x: Optional[Tensor] = None,
    *,
    parameters: Optional[Sequence[Tuple[Tensor, Tensor]]] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""Singular values of the input-output Jacobians of ``n_nets`` random MLPs.

    Computes :func:`input_output_jacobian` (arguments as there) and the singular values
    of each :math:`J` by a float64 SVD.  Their squares are the eigenvalues
    :math:`\lambda` of :math:`JJ^\top`, whose mean :func:`mean_squared_singular_value`
    and variance :func:`jacobian_spectrum_variance` predict.

    Returns
    -------
    Tensor
        ``(n_nets, min(n_L, n_0))``, float64 on the CPU, in descending order.

    Raises
    ------
    ValueError
        As :func:`input_output_jacobian`.
    """
    jac = input_output_jacobian(config, x, parameters=parameters, generator=generator, device=device, dtype=dtype)
    return torch.linalg.svdvals(jac.to(torch.float64)).cpu()


# --------------------------------------------------------------------------- #
# Theory.
# --------------------------------------------------------------------------- #
def _check_depth(depth) -> Tensor:
    if isinstance(depth, bool):
        raise ValueError(f"depth must be an integer >= 0 (or a tensor of them); got {depth!r}")
    t = real_tensor(depth, "depth")
    if bool(torch.any(torch.isnan(t))) or bool(torch.any(t < 0)) or bool(torch.any(t != torch.round(t))):
        raise ValueError(f"depth must be an integer >= 0 (or a tensor of them); got {depth!r}")
    return t.to(torch.float64)


def _is_scalar(*xs) -> bool:
    return all(isinstance(v, numbers.Real) for v in xs)


def mean_squared_singular_value(act, sigma_w: Param, sigma_b: Param, depth):
    r"""Mean squared singular value of the input-output Jacobian, :math:`\chi_1^L`.

    .. math::

        \frac{1}{N}\,\mathbb E \operatorname{tr} JJ^\top = \prod_{l=1}^L \sigma_w^2\,
        \mathbb E\,\phi'(\sqrt{q^*}z)^2 = \chi_1^L

    for a network whose layers all sit at the length fixed point :math:`q^*`, with Gaussian
    or orthogonal weights alike (Pennington et al. 2017, 2018).  Below the edge of chaos
    it vanishes exponentially with depth, above it explodes.

    Parameters
    ----------
    act : str or Activation
        The activation.
    sigma_w, sigma_b : float or Tensor
        Weight and bias scales (broadcastable).
    depth : int or Tensor
        The number of layers :math:`L \ge 0` (broadcastable).

    Returns
    -------
    float or Tensor
        ``nan`` where :math:`q^*` is infinite.

    Raises
    ------
    ValueError
        For negative sigmas, an unknown activation or a depth that is not an integer >= 0.
    """
    d = _check_depth(depth)
    chi = torch.as_tensor(_mf.chi_1(act, sigma_w, sigma_b), dtype=torch.float64)
    out = chi ** d.to(chi.device)
    return float(out) if _is_scalar(sigma_w, sigma_b, depth) else out


def jacobian_spectrum_variance(act, sigma_w: Param, sigma_b: Param, depth, weights: str = "gaussian"):
    r"""Variance of the eigenvalues :math:`\lambda` of :math:`JJ^\top` (squared singular values).

    .. math::

        \operatorname{Var}\lambda = \chi_1^{2L}\, L\Big(\frac{\mu_2}{\mu_1^2} - 1 - s_1\Big),
        \qquad \mu_k = \mathbb E\,\phi'(\sqrt{q^*}z)^{2k},

    with :math:`s_1 = -1` for Gaussian and :math:`s_1 = 0` for orthogonal weights, in the
    limit of infinite width with every layer at :math:`q^*`.  At the edge of chaos
    (:math:`\chi_1 = 1`) this is :math:`L(\mu_2/\mu_1^2 - 1 - s_1)` (Pennington et al.
    2017, 2018).  It grows linearly with depth unless
    the weights are orthogonal *and* :math:`\phi'` is nearly constant on the scale of
    :math:`\sqrt{q^*}`: the condition for dynamical isometry.  For relu,
    :math:`\mu_2/\mu_1^2 = 2`, so the variance is at least :math:`L` at criticality.

    Parameters
    ----------
    act : str or Activation
        The activation.
    sigma_w, sigma_b : float or Tensor
        Weight and bias scales (broadcastable).
    depth : int or Tensor
        The number of layers :math:`L \ge 0` (broadcastable).
    weights : {"gaussian", "orthogonal"}
        The weight ensemble.

    Returns
    -------
    float or Tensor
        ``nan`` where :math:`q^*` is infinite.

    Raises
    ------
    ValueError
        For an unknown ``weights``, negative sigmas, an unknown activation or a depth that
        is not an integer >= 0.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {sorted(WEIGHTS)}; got {weights!r}")
    d = _check_depth(depth)
    a = _acts.get(act)
    qs = torch.as_tensor(_mf.q_star(a, sigma_w, sigma_b), dtype=torch.float64)
    fin = torch.isfinite(qs)
    # at q* = 0 the moments are the q -> 0 limits (one-sided conventions at kinks)
    qe = torch.where(fin, qs.clamp(min=1e-12), torch.ones_like(qs))
    mu1, mu2 = expect(lambda u: (a.deriv(u) ** 2, a.deriv(u) ** 4), qe, breakpoints=a.breakpoints, tail_from=a.tail_from)
    sw2 = torch.as_tensor(np.asarray(sigma_w, dtype=np.float64) if not isinstance(sigma_w, Tensor) else sigma_w).to(torch.float64) ** 2
    chi = sw2.to(mu1.device) * mu1
    d = d.to(mu1.device)
    var = chi ** (2 * d) * d * (mu2 / mu1**2 - 1.0 - WEIGHTS[weights])
    var = torch.where(fin, var, torch.full_like(var, float("nan")))
    return float(var) if _is_scalar(sigma_w, sigma_b, depth) else var


# --------------------------------------------------------------------------- #
# Residual networks: the universal law of Tarnowski et al. (2019).
# --------------------------------------------------------------------------- #
#: Bisection steps of the density solver (each halves the bracket; 2^-80 is below float64's resolution).
_RESNET_BISECTION_STEPS = 80
#: Gauss-Legendre nodes of the CDF and moment quadratures (the integrand is smooth after the
#: change of variables, so the error is at round-off level; tests check 1e-10).
_RESNET_QUAD_NODES = 96


def _check_cumulant(a) -> Tensor:
    """The effective cumulant as a float64 tensor; ValueError unless finite and > 0."""
    return _as_t(a, "a (the effective cumulant)", low=0.0, strict=True)


def _check_points(x, name: str) -> Tensor:
    if isinstance(x, bool):
        raise ValueError(f"{name} must be a real number or tensor; got {x!r}")
    t = real_tensor(x.detach() if isinstance(x, Tensor) else x, name)
    if t.is_complex() or bool(torch.any(torch.isnan(t))):
        raise ValueError(f"{name} must be real and not NaN; got {x!r}")
    return t


def _out(t: Tensor, *inputs):
    return float(t) if _is_scalar(*inputs) else t


def _edge_s(a: Tensor) -> Tensor:
    return torch.sqrt(a * (a + 2.0))


def resnet_spectral_edges(a) -> Tuple:
    r"""Edges :math:`\lambda_\pm` of the universal spectrum of :math:`JJ^\top` for a deep residual net.

    .. math::

        \lambda_\pm = \big(1 + a \pm s\big)\, e^{\pm s}, \qquad s = \sqrt{a(a+2)},
        \qquad \lambda_- = 1/\lambda_+ .

    They are the points where :math:`z(w) = \frac{w}{w-1}e^{a(2w-1)}` (the universal
    equation, see :func:`resnet_spectral_density`) turns back on the real axis,
    :math:`z'(w) = 0 \iff w(w-1) = 1/(2a)` (Tarnowski et al. 2019, Sec. II.1; the same
    edges as those of Biane's free multiplicative Brownian motion at time :math:`t = 2a`).

    Parameters
    ----------
    a : float or Tensor
        The effective cumulant, :math:`a > 0` (see :mod:`sigprop.resnet_meanfield`).

    Returns
    -------
    (lambda_minus, lambda_plus)
        Floats for a float, tensors of the shape of ``a`` for a tensor.

    Raises
    ------
    ValueError
        If ``a`` is not finite and positive.
    """
    at = _check_cumulant(a)
    s = _edge_s(at)
    lp = (1.0 + at + s) * torch.exp(s)
    lm = 1.0 / lp
    return _out(lm, a), _out(lp, a)


def resnet_condition_number(a):
    r"""Condition number :math:`\kappa(J) = s_{\max}/s_{\min}` of a deep residual net's Jacobian.

    .. math::

        \kappa(J) = \sqrt{\lambda_+/\lambda_-} = \lambda_+ = e^{\,s + \operatorname{arcsinh} s},
        \qquad s = \sqrt{a(a+2)},

    in the limit of large width and depth (Tarnowski et al. 2019, eq. 26).  It tends to 1
    (isometry) as :math:`a \to 0`, like :math:`1 + 2\sqrt{2a}`, and grows like
    :math:`2(a+1)e^{a+1}` for large :math:`a`.  The condition number of :math:`JJ^\top` is its square.

    Raises
    ------
    ValueError
        If ``a`` is not finite and positive.
    """
    at = _check_cumulant(a)
    s = _edge_s(at)
    return _out(torch.exp(s + torch.asinh(s)), a)


def resnet_spectrum_mean(a):
    r"""Mean :math:`m_1 = e^{a}` of the universal law of the eigenvalues of :math:`JJ^\top`.

    From the S-transform :math:`S(m) = e^{-a(1+2m)}`: :math:`m_1 = 1/S(0)` (Tarnowski et al. 2019).

    Raises
    ------
    ValueError
        If ``a`` is not finite and positive.
    """
    return _out(torch.exp(_check_cumulant(a)), a)


def resnet_spectrum_variance(a):
    r"""Variance :math:`2a\,e^{2a}` of the universal law of the eigenvalues of :math:`JJ^\top`.

    From :math:`S(m) = 1/m_1 + \frac{m_1^2 - m_2}{m_1^3} m + O(m^2)` and
    :math:`S(m) = e^{-a(1+2m)}` (Tarnowski et al. 2019).  For small :math:`a` the law is a
    semicircle around 1 of this variance, :math:`\approx 2a`.

    Raises
    ------
    ValueError
        If ``a`` is not finite and positive.
    """
    at = _check_cumulant(a)
    return _out(2.0 * at * torch.exp(2.0 * at), a)


def _disc(t: Tensor, a: Tensor) -> Tensor:
    # (u - 1/2)^2 on the curve Im log z(w) = 0, w = u - i t:  u^2 - u + t^2 = t cot(2 a t)
    return 0.25 - t * t + t / torch.tan(2.0 * a * t)


def _t_max(a: Tensor) -> Tensor:
    """The top of the curve (u = 1/2), where the disc vanishes: bisection on (0, pi/(2a))."""
    lo = torch.zeros_like(a)
    hi = math.pi / (2.0 * a)
    for _ in range(_RESNET_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        pos = _disc(mid, a) > 0
        lo = torch.where(pos, mid, lo)
        hi = torch.where(pos, hi, mid)
    return 0.5 * (lo + hi)


def _log_x_upper(t: Tensor, a: Tensor) -> Tensor:
    """log z on the upper branch u = 1/2 + sqrt(disc) of the curve (z real, z >= 1)."""
    r = torch.sqrt(_disc(t, a).clamp(min=0.0))
    u = 0.5 + r
    # log|w|^2 - log|w - 1|^2 = log1p((2u - 1) / ((u - 1)^2 + t^2)), with 2u - 1 = 2r
    return 0.5 * torch.log1p(2.0 * r / ((u - 1.0) ** 2 + t * t)) + 2.0 * a * r


def _resnet_w(x: Tensor, a: Tensor) -> Tuple[Tensor, Tensor]:
    r"""Solve the universal equation on the real axis: ``w = x G(x - i0)``.

    Returns ``(w, inside)``, complex ``w`` with ``Im w >= 0`` ... see :func:`resnet_spectral_density`.
    """
    x, a = torch.broadcast_tensors(x, a)
    s = _edge_s(a)
    log_edge = torch.log1p(a + s) + s  # log lambda_+
    y = torch.log(x.clamp(min=1e-300)).abs()  # by the symmetry x -> 1/x, solve at |log x|
    inside = (x > 0) & (y < log_edge)
    tm = _t_max(a)
    # _log_x_upper decreases from log lambda_+ (t = 0) to 0 (t = t_max): bisection for t
    lo, hi = torch.zeros_like(a), tm.clone()
    for _ in range(_RESNET_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        above = _log_x_upper(mid, a) > y
        lo = torch.where(above, mid, lo)
        hi = torch.where(above, hi, mid)
    t = torch.where(inside, 0.5 * (lo + hi), torch.zeros_like(a))
    r = torch.sqrt(_disc(t.clamp(min=1e-300), a).clamp(min=0.0))
    u = torch.where(x >= 1, 0.5 + r, 0.5 - r)  # upper branch for x >= 1, its mirror 1 - u for x < 1
    w = torch.complex(torch.where(inside, u, torch.full_like(u, float("nan"))), t)
    # Near x = 1 (t -> t_max) u = 1/2 +- sqrt(disc) loses half the digits of t; two Newton
    # steps on F(w) = w - x (w - 1) e^{a(1 - 2w)} from this start restore full precision.
    z, ac = x.to(w.dtype), a.to(w.dtype)
    for _ in range(2):
        e = torch.exp(ac * (1 - 2 * w))
        f = w - z * (w - 1) * e
        df = 1 - z * e + 2 * ac * z * (w - 1) * e
        w_new = w - f / df
        w = torch.where(inside & torch.isfinite(w_new) & (w_new.imag > 0), w_new, w)
    return w, inside


def resnet_spectral_density(x, a):
    r"""Universal density of the squared singular values of a deep residual net's Jacobian.

    For the residual network :math:`x^l = x^{l-1} + \phi(W^l x^{l-1} + b^l)` with
    :math:`W^l_{ij} \sim \mathcal N(0, \sigma_w^2/(NL))`, the eigenvalues :math:`\lambda`
    of :math:`JJ^\top`, :math:`J = \prod_l (\mathbb 1 + D^l W^l)`, have in the limit of
    large width :math:`N` and then large depth :math:`L` a density that depends on the
    activation only through the effective cumulant :math:`a`
    (:func:`sigprop.resnet_meanfield.effective_cumulant`).  Its Green's function
    :math:`G(z) = \int \rho(\lambda)\,d\lambda/(z - \lambda)` solves (Tarnowski et al. 2019, eq. 25)

    .. math::

        G = (zG - 1)\, e^{a(1 - 2zG)}
        \quad\Longleftrightarrow\quad
        z = \frac{w}{w-1}\, e^{a(2w - 1)}, \quad w = zG,

    and :math:`\rho(\lambda) = -\frac1\pi \operatorname{Im} G(\lambda + i0) = |\operatorname{Im} w|/(\pi\lambda)`.

    **Method.**  Rather than Newton's method on the complex equation (which needs a good
    start near the edges, where :math:`\rho \propto \sqrt{\lambda_+ - \lambda}`), we solve
    it in a parametrization.  Write :math:`w = u - it`.  The equation has a real
    :math:`z` exactly when :math:`\arg\frac{w}{w-1} = 2at`, i.e. on the curve
    :math:`u = \tfrac12 \pm \sqrt{\tfrac14 - t^2 + t\cot(2at)}`, :math:`0 \le t \le t_{\max}`.
    Along its upper branch :math:`z` is real and falls monotonically from :math:`\lambda_+`
    (:math:`t = 0`) to 1 (:math:`t = t_{\max}`, where the branches meet); the lower
    branch (:math:`u \to 1 - u`) gives :math:`z \to 1/z`, the symmetry of the law.
    For each :math:`\lambda` we find :math:`t` by bisection on :math:`|\log\lambda|`
    (80 halvings, to round-off), then :math:`\rho = t/(\pi\lambda)`.  The solution is
    checked in the tests against Newton's method with continuation from outside the
    support, against the closed-form moments and edges, and against products of random
    matrices.

    Parameters
    ----------
    x : float or Tensor
        Points :math:`\lambda` (squared singular values); any real values (0 outside
        :math:`(\lambda_-, \lambda_+)`).
    a : float or Tensor
        Effective cumulant(s), :math:`a > 0`; broadcasts with ``x``.

    Returns
    -------
    float or Tensor
        :math:`\rho(x)`, float64, of the broadcast shape.

    Raises
    ------
    ValueError
        If ``a`` is not finite and positive or ``x`` is not real.

    References
    ----------
    Tarnowski, Warchoł, Jastrzębski, Tabor & Nowak (2019), *Dynamical isometry is achieved
    in residual networks in a universal way for any activation function*, eq. (25).
    """
    at, xt = _check_cumulant(a), _check_points(x, "x")
    w, inside = _resnet_w(xt, at.to(xt.device))
    rho = torch.where(inside, w.imag / (math.pi * xt.clamp(min=1e-300)), torch.zeros_like(w.imag))
    return _out(rho, x, a)


def resnet_singular_value_density(s, a):
    r"""Universal density of the singular values :math:`s` of a deep residual net's Jacobian.

    .. math::

        \rho_s(s) = 2s\,\rho(s^2),

    with :math:`\rho` the density of the squared singular values, :func:`resnet_spectral_density`.

    Raises
    ------
    ValueError
        If ``a`` is not finite and positive or ``s`` is not real.
    """
    st = _check_points(s, "s")
    rho = resnet_spectral_density(st * st, a if isinstance(a, Tensor) else torch.as_tensor(np.asarray(a, dtype=np.float64)))
    return _out(2.0 * st.clamp(min=0.0) * rho, s, a)


def _gl(n: int) -> Tuple[Tensor, Tensor]:
    z, w = np.polynomial.legendre.leggauss(n)
    return torch.as_tensor(z), torch.as_tensor(w)


def _resnet_integral(f, a: Tensor, upper: Tensor) -> Tensor:
    r"""``int_{lambda_-}^{upper} f(lambda) rho(lambda) d lambda`` by Gauss-Legendre in
    :math:`\ell = \log\lambda` (the law spans decades when :math:`a` is large) after
    :math:`\ell = \ell_- + (\ell_U - \ell_-)(1 - \cos\varphi)/2`, which makes the square-root
    edges smooth."""
    s = _edge_s(a)
    lp = torch.log1p(a + s) + s  # log lambda_+; log lambda_- = -lp
    up = torch.log(upper.clamp(min=1e-300)).clamp(min=-lp, max=lp)
    z, wts = _gl(_RESNET_QUAD_NODES)
    phi = (z.to(a.device) + 1.0) * (math.pi / 2)  # (0, pi)
    span = (up + lp).unsqueeze(-1)
    ell = -lp.unsqueeze(-1) + span * (1.0 - torch.cos(phi)) / 2
    jac = span * torch.sin(phi) / 2 * (math.pi / 2)
    lam = torch.exp(ell)
    rho = resnet_spectral_density(lam, a.unsqueeze(-1))
    return (wts.to(a.device) * jac * lam * rho * f(lam)).sum(-1)


def resnet_spectrum_cdf(x, a):
    r"""Cumulative distribution :math:`F(x) = \int_{\lambda_-}^{x} \rho(\lambda)\,d\lambda` of the universal law.

    Computed by Gauss-Legendre quadrature of :func:`resnet_spectral_density` after the change
    of variables :math:`\log\lambda = \log\lambda_- + (\log x - \log\lambda_-)(1 - \cos\varphi)/2`, which
    removes the square-root behaviour at the edges (accurate to about :math:`10^{-10}`).
    Used for Kolmogorov-Smirnov distances between an empirical spectrum and the theory.

    Raises
    ------
    ValueError
        If ``a`` is not finite and positive or ``x`` is not real.
    """
    at, xt = _check_cumulant(a), _check_points(x, "x")
    xb, ab = torch.broadcast_tensors(xt, at.to(xt.device))
    cdf = _resnet_integral(lambda lam: torch.ones_like(lam), ab, xb).clamp(0.0, 1.0)
    return _out(cdf, x, a)


def resnet_ks_distance(eigenvalues, a, *, exclude_top: int = 0) -> float:
    r"""Kolmogorov-Smirnov distance between pooled eigenvalues of :math:`JJ^\top` and the universal law.

    .. math::

        D = \sup_x \big|F_{\text{emp}}(x) - F_a(x)\big|,

    with :math:`F_a` from :func:`resnet_spectrum_cdf`.  ``exclude_top`` drops that many of the
    largest eigenvalues of *each* matrix first (the outlier of bias-free ReLU nets, see
    chapter 6).

    Parameters
    ----------
    eigenvalues : Tensor
        ``(n_nets, N)`` or ``(N,)``: squared singular values of each network's Jacobian.
    a : float
        The effective cumulant.
    exclude_top : int
        Number of largest eigenvalues per network to leave out, >= 0.

    Raises
    ------
    ValueError
        For a bad ``a``, ``exclude_top`` or ``eigenvalues``.
    """
    ev = _check_points(eigenvalues, "eigenvalues")
    if ev.ndim == 1:
        ev = ev.unsqueeze(0)
    if ev.ndim != 2 or ev.shape[-1] < 1:
        raise ValueError(f"eigenvalues must have shape (N,) or (n_nets, N); got {tuple(ev.shape)}")
    if isinstance(exclude_top, bool) or not isinstance(exclude_top, numbers.Integral) or not 0 <= exclude_top < ev.shape[-1]:
        raise ValueError(f"exclude_top must be an integer with 0 <= exclude_top < N = {ev.shape[-1]}; got {exclude_top!r}")
    at = _check_cumulant(a)
    if at.numel() != 1:
        raise ValueError(f"a must be a single number here; got shape {tuple(at.shape)}")
    ev = torch.sort(ev, dim=-1).values[:, : ev.shape[-1] - exclude_top].flatten().sort().values
    n = ev.numel()
    f = resnet_spectrum_cdf(ev.cpu(), at.reshape(()).cpu())
    k = torch.arange(1, n + 1, dtype=torch.float64)
    return float(torch.maximum(k / n - f, f - (k - 1) / n).max())


# --------------------------------------------------------------------------- #
# Residual networks: exact Jacobians of random ensembles.
# --------------------------------------------------------------------------- #
def resnet_input_output_jacobian(
    config,
    x: Optional[Tensor] = None,
    *,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""Exact input-output Jacobians of ``n_nets`` random residual networks.

    For :math:`x^l = x^{l-1} + \phi(W^l x^{l-1} + b^l)` (see :mod:`sigprop.ensemble.resnet`)

    .. math::

        J = \frac{\partial x^L}{\partial x^0} = \prod_{l=L}^{1} \big(\mathbb 1 + D^l W^l\big),
        \qquad D^l = \operatorname{diag}\,\phi'(h^l),

    accumulated as :math:`J \leftarrow J + D^l (W^l J)` with one batched matmul per layer
    (Tarnowski et al. 2019, eq. 2).  The networks are those of
    :func:`sigprop.ensemble.propagate_resnet` for the same generator state, and the default
    input is the same (one standard Gaussian vector per network).

    Parameters
    ----------
    config : sigprop.ensemble.ResNetConfig
        The ensemble.
    x : Tensor, optional
        ``(N,)`` or ``(n_nets, N)``.
    generator : torch.Generator, optional
        Source of all randomness.
    device, dtype
        Where and in which precision to compute.

    Returns
    -------
    Tensor
        ``(n_nets, N, N)``.

    Raises
    ------
    ValueError
        For a bad ``config``, ``x`` or ``dtype``.
    """
    from .ensemble import resnet as _res

    layers, x = _res._prepare(config, x, generator, device, dtype)
    n, k = config.width, config.n_nets
    act = config.activation
    jac = torch.eye(n, device=x.device, dtype=dtype).expand(k, n, n).clone()
    with torch.no_grad():
        for w, h, _x in _res._walk(config, layers, x):
            jac = jac + act.deriv(h).unsqueeze(-1) * torch.bmm(w, jac)
    return jac


def resnet_jacobian_singular_values(
    config,
    x: Optional[Tensor] = None,
    *,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""Singular values of :func:`resnet_input_output_jacobian` (float64 SVD), descending.

    Their squares are the eigenvalues of :math:`JJ^\top` that :func:`resnet_spectral_density`
    describes in the limit of large width and depth.

    Returns
    -------
    Tensor
        ``(n_nets, N)``, float64, on the CPU.

    Raises
    ------
    ValueError
        As :func:`resnet_input_output_jacobian`.
    """
    jac = resnet_input_output_jacobian(config, x, generator=generator, device=device, dtype=dtype)
    return torch.linalg.svdvals(jac.to(torch.float64)).cpu()
