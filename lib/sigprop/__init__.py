"""sigprop: signal propagation in deep networks at initialization.

Modules (one concept each):

* :mod:`sigprop.activations` -- activations with derivatives, a registry;
* :mod:`sigprop.gaussian` -- Gaussian expectations by panel quadrature;
* :mod:`sigprop.meanfield` -- q-map, c-map, fixed points, chi_1, EOC, depth scales;
* :mod:`sigprop.init` -- weight initializations as batched samplers;
* :mod:`sigprop.ensemble` -- many random networks at once, statistics on the fly;
* :mod:`sigprop.train` -- models from an initialization, a seeded training loop;
* :mod:`sigprop.spectra` -- singular values of input-output Jacobians, their theory;
* :mod:`sigprop.resnet_meanfield` -- residual networks: mean field and the effective cumulant;
* :mod:`sigprop.trainability` -- many small networks trained at once, over (sigma_w, depth) grids;
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

__all__ = ["activations", "gaussian", "meanfield", "init", "ensemble", "stats", "data", "runtime", "plotting", "train", "spectra", "trainability",
            "exercises", "explore", "diagnosis", "diagnose"]
__all__ += ["resnet_meanfield"]


def __getattr__(name):
    # ensemble, data, plotting, train, spectra and trainability import heavier dependencies; load on first use
    if name in ("ensemble", "data", "plotting", "train", "spectra", "trainability"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    if name in ("exercises", "explore", "diagnosis"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    if name == "diagnose":  # the function, from the module sigprop.diagnosis
        from .diagnosis import diagnose

        return diagnose
    if name == "resnet_meanfield":  # residual-network mean field (chapter 6)
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'sigprop' has no attribute {name!r}")
