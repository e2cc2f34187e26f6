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

Residual networks have their own wing: the exact Jacobians of random residual ensembles in
:mod:`sigprop.ensemble.resnet`, their universal spectral law in :mod:`sigprop.resnet_theory`.

References
----------
* Pennington, Schoenholz & Ganguli (2017), *Resurrecting the sigmoid in deep learning
  through dynamical isometry: theory and practice*.
* Pennington, Schoenholz & Ganguli (2018), *The emergence of spectral universality in
  deep networks*.
* Saxe, McClelland & Ganguli (2014), *Exact solutions to the nonlinear dynamics of
  learning in deep linear neural networks* (orthogonal initialization).
"""
from __future__ import annotations

import numbers
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from . import activations as _acts
from . import meanfield as _mf
from . import runtime
from ._deprecation import moved_names
from .ensemble import MLPConfig, MLPLayerSampler
from .gaussian import expect
from ._checks import check_budget, check_dtype, real_tensor

Tensor = torch.Tensor
Param = Union[float, int, Tensor, np.ndarray]

__all__ = [
    "input_output_jacobian",
    "jacobian_singular_values",
    "mean_squared_singular_value",
    "jacobian_spectrum_variance",
    "WEIGHTS",
]

# Deprecated aliases (one release): the residual-network wing moved out of this module.
__getattr__ = moved_names(__name__, {
    **{name: "sigprop.resnet_theory" for name in (
        "resnet_spectral_density", "resnet_singular_value_density", "resnet_spectrum_cdf", "resnet_spectral_edges",
        "resnet_condition_number", "resnet_spectrum_mean", "resnet_spectrum_variance", "resnet_ks_distance")},
    "resnet_input_output_jacobian": "sigprop.ensemble.resnet",
    "resnet_jacobian_singular_values": "sigprop.ensemble.resnet",
})

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
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"x must be finite; got {int((~torch.isfinite(x)).sum())} nan or inf value(s)")
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
    if x is not None:
        x = _check_x(x, n_nets)
    n_in = config.layer_widths[0] if x is None else int(x.shape[-1])
    # the layer seeds are drawn first, then the default input: the networks of propagate_mlp
    layers = MLPLayerSampler(config, n_in, generator=generator, device=dev, dtype=dtype) if parameters is None else None
    if x is None:
        x = _default_input(config, n_in, generator, dev, dtype)
    x = x.to(device=dev, dtype=dtype).expand(n_nets, n_in).unsqueeze(-2)  # (n_nets, 1, n_in)
    if parameters is not None:
        params = _check_parameters(parameters, config, n_in)
        layer = lambda l: tuple(t.to(device=dev, dtype=dtype) for t in params[l - 1])
    else:
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
