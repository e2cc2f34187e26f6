"""sigprop: signal propagation in deep networks at initialization.

Modules (one concept each):

* :mod:`sigprop.activations` -- activations with derivatives, a registry;
* :mod:`sigprop.gaussian` -- Gaussian expectations by panel quadrature;
* :mod:`sigprop.meanfield` -- q-map, c-map, fixed points, chi_1, EOC, depth scales;
* :mod:`sigprop.init` -- weight initializations as batched samplers;
* :mod:`sigprop.ensemble` -- many random networks at once, statistics on the fly;
* :mod:`sigprop.train` -- models from an initialization, a seeded training loop;
* :mod:`sigprop.spectra` -- singular values of input-output Jacobians, their theory;
* :mod:`sigprop.resnet_theory` -- residual networks: mean field, effective cumulant, universal spectral law;
* :mod:`sigprop.moment_theory` -- predictions for the moments of signal and noise (Labatie 2019);
* :mod:`sigprop.critique` -- the edge of chaos under scrutiny: finite width, counterexamples, exact EOC;
* :mod:`sigprop.gaussian_preact` -- symmetric Weibull weights and activations with Gaussian pre-activations;
* :mod:`sigprop.trainability` -- many small networks trained at once, over (sigma_w, depth) grids;
* :mod:`sigprop.sweep` -- a grid of independent runs, in process or on an executor (Dask);
* :mod:`sigprop.stats` -- moments, KS distance, correlations, effective rank;
* :mod:`sigprop.data` -- MNIST, CIFAR-10, digits from their official files;
* :mod:`sigprop.runtime` -- device, seeding and the scale preset;
* :mod:`sigprop.plotting` -- the book's figure style;
* :mod:`sigprop.exercises` -- self-checking exercises: ``check`` and the grader's lines;
* :mod:`sigprop.explore` -- interactive explorers of the maps and the phase diagram;
* :mod:`sigprop.diagnosis` -- :func:`sigprop.diagnose`, per-layer statistics of any network.
"""
from . import activations, gaussian, init, meanfield, runtime, stats  # noqa: F401

__version__ = "0.1.0"

_LAZY = ("ensemble", "data", "plotting", "train", "spectra", "trainability", "exercises", "explore",
         "diagnosis", "resnet_theory", "moment_theory", "resnet_meanfield", "critique", "gaussian_preact", "sweep")

__all__ = ["activations", "gaussian", "meanfield", "init", "stats", "runtime", *_LAZY, "diagnose"]


def __getattr__(name):
    # these modules import heavier dependencies (scipy, matplotlib, ...): load on first use
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    if name == "diagnose":  # the function, from the module sigprop.diagnosis
        from .diagnosis import diagnose

        return diagnose
    raise AttributeError(f"module 'sigprop' has no attribute {name!r}")
