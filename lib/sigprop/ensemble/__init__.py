r"""Propagation kernels: many independent random networks at once.

The first kernel, :func:`propagate_mlp`, pushes a batch of inputs through
``n_nets`` independent random fully connected networks (the mean-field model of
Poole et al. 2016 and Schoenholz et al. 2017)

.. math::

    h^l = W^l x^{l-1} + b^l, \qquad x^l = \phi(h^l), \qquad l = 1, \dots, L,
    \qquad x^0 = \text{input},

with :math:`W^l \in \mathbb R^{n_l \times n_{l-1}}` drawn from an initialization of
:mod:`sigprop.init` (default ``"gaussian"``: :math:`W^l_{ij} \sim \mathcal N(0,
\sigma_w^2/n_{l-1})`) and :math:`b^l_i \sim \mathcal N(0, \sigma_b^2)`, fresh for
every layer and every network, and it records per-layer statistics on the fly.

.. rubric:: Layout and cost

Activations are held as ``(n_nets, batch, width)`` and weights as
``(n_nets, fan_out, fan_in)``; one layer is one batched matmul
``h = x @ W.mT + b[:, None, :]``.  A shared input ``x`` of shape
``(batch, n_in)`` broadcasts over the networks.  At the sizes of the book
(``width`` much larger than ``batch``) the cost is dominated by *sampling* the
weights (``n_nets * width * fan_in`` random numbers per layer), not by the
matmul.  Orthogonal weights add a batched QR per layer, :math:`O(\text{width}^3)`.

.. rubric:: Memory

Every layer's weights and biases are drawn from their own
:class:`torch.Generator`, seeded with a per-layer seed that is drawn once, at the
start, from the caller's generator.  Weights are therefore never stored: they are
regenerated bit for bit whenever they are needed again.

* Forward only (``backward=False``): one layer's weights and activations are alive
  at a time; the statistics are reduced as each layer is computed.  Memory is
  :math:`O(1)` in depth (apart from the per-layer statistics themselves, which are
  small: ``q`` is ``L * n_nets * batch`` numbers).
* With ``backward=True``: the forward pass keeps the input of every
  ``k``-th layer (a checkpoint; ``k = ceil(sqrt(L))`` by default) and the
  pre-activations of the last segment.  The backward pass walks the segments from
  the last to the first, recomputing each segment's pre-activations from its
  checkpoint, then back-propagating through it while regenerating each layer's
  weights.  Memory is :math:`O(L/k + k) = O(\sqrt L)` activations plus one
  layer's weights; each layer's weights are sampled three times (twice in the
  last segment).

.. rubric:: Public API

* :class:`MLPConfig` -- architecture and initialization of the ensemble.
* :func:`propagate_mlp` -- forward (and optionally backward) statistics, as an
  :class:`MLPTrace`.
* :class:`MLPLayerSampler` -- the random layers :math:`z^l = W^l\phi(z^{l-1}) + b^l` of the
  ensemble, for any initialization: every simulation of an MLP draws its weights here.
* :func:`random_layer`, :func:`conditional_gaussian_layer` -- one such layer drawn in order
  from one generator (any weight law; or, for one input, Gaussian pre-activations from their
  exact law), for simulations that walk layer by layer and record their own statistics
  (:func:`sigprop.critique.sample_preactivations`, :func:`sigprop.gaussian_preact.propagate`).
* :func:`mlp_parameters` -- the very weights and biases :func:`propagate_mlp`
  draws for a given generator state (for inspection and for tests).
* :mod:`sigprop.ensemble.resnet` -- residual networks: :class:`ResNetConfig`,
  :func:`propagate_resnet`, :func:`resnet_parameters`, the exact Jacobians
  :func:`resnet_input_output_jacobian` and :func:`resnet_jacobian_singular_values`,
  and the trainable :func:`make_resnet`.
* :mod:`sigprop.ensemble.signal_noise` -- signal and noise (Labatie 2019):
  :func:`propagate_signal_noise` and its configuration.

The theory set beside these simulations lives in :mod:`sigprop.meanfield`,
:mod:`sigprop.resnet_theory` and :mod:`sigprop.moment_theory`.

Example
-------
>>> import torch
>>> from sigprop import ensemble
>>> cfg = ensemble.MLPConfig(depth=20, width=1000, act="tanh", sigma_w=1.5, sigma_b=0.1, n_nets=8)
>>> x = torch.randn(16, 1000, generator=torch.Generator().manual_seed(0))
>>> tr = ensemble.propagate_mlp(x, cfg, generator=torch.Generator().manual_seed(1), device="cpu")
>>> tr.q.shape, tr.c.shape
(torch.Size([20, 8, 16]), torch.Size([20, 8, 16, 16]))

References
----------
* Poole, Lahiri, Raghu, Sohl-Dickstein & Ganguli (2016), *Exponential
  expressivity in deep neural networks through transient chaos*.
* Schoenholz, Gilmer, Ganguli & Sohl-Dickstein (2017), *Deep information
  propagation*.
* Glorot & Bengio (2010), *Understanding the difficulty of training deep
  feedforward neural networks* (per-layer activation and gradient histograms).
* Chen, Xu, Zhang & Guestrin (2016), *Training deep nets with sublinear memory
  cost* (the :math:`\sqrt L` checkpointing schedule).
"""
from __future__ import annotations

from . import _common
from .layers import MLPConfig, MLPLayerSampler, conditional_gaussian_layer, random_layer
from .mlp import MLPTrace, mlp_parameters, propagate_mlp
from .resnet import (  # random residual networks (Tarnowski et al. 2019)
    RESNET_INITS, ResNetConfig, ResNetTrace, make_resnet, propagate_resnet, resnet_input_output_jacobian,
    resnet_jacobian_singular_values, resnet_parameters,
)
from .signal_noise import (  # the signal and noise kernels of Labatie (2019)
    SignalNoiseConfig, SignalNoiseTrace, prepare_inputs, propagate_signal_noise, signal_noise_parameters,
)

#: Largest batch for which the correlation matrices ``c`` are recorded by default.
C_MAX = _common.C_MAX
#: The quantities that can be histogrammed, ``h``, ``x`` and the gradients of the loss
#: with respect to them and to the weights, ``grad_h``, ``grad_x``, ``grad_w``.
HIST_KEYS = _common.HIST_KEYS

__all__ = ["MLPConfig", "MLPTrace", "MLPLayerSampler", "propagate_mlp", "mlp_parameters", "random_layer",
           "conditional_gaussian_layer", "C_MAX", "HIST_KEYS"]
__all__ += ["SignalNoiseConfig", "SignalNoiseTrace", "propagate_signal_noise", "signal_noise_parameters",
            "prepare_inputs"]
__all__ += ["ResNetConfig", "ResNetTrace", "resnet_parameters", "propagate_resnet", "resnet_input_output_jacobian",
            "resnet_jacobian_singular_values", "make_resnet", "RESNET_INITS"]


def __getattr__(name):
    if name == "moment_theory":  # deprecated alias of sigprop.moment_theory (warns on import)
        import importlib

        return importlib.import_module(f"{__name__}.moment_theory")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
