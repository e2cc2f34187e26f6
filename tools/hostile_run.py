"""A hostile run of sigprop's public API: several hundred bad inputs, each outcome classified.

Usage::

    OMP_NUM_THREADS=1 python tools/hostile_run.py [--verbose] [--no-guards]

Every attempt is a call a careless or hostile user could make. Its outcome is one of

* ``clear``: an exception of an ordinary type (ValueError, TypeError, FileNotFoundError,
  FileExistsError, sigprop's ChecksumError, or a RuntimeError/RuntimeWarning the library
  raises itself) raised in sigprop's own code, whose message names the argument; a warning
  that names it also counts where the call may go on (a clamped slider);
* ``deep``: any other exception (an IndexError from torch, an AttributeError, a message
  that does not name the argument, an error raised ten frames down in torch or gzip);
* ``silent``: the call returned although its input was invalid (or its result is wrong);
* ``state``: the call changed something of the user's (a model's buffers or mode, the global
  random state, a file that was there before);
* ``unguarded``: work that would run for minutes or exhaust memory started without an
  estimate or a refusal (run in a child process with a time and memory limit).

The counts are printed at the end; ``--verbose`` prints every attempt that is not ``clear``.
Nothing here needs the network: downloads go to ``file://`` URLs in a temporary folder.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import traceback
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

import sigprop
from sigprop import (critique, data, explore, gaussian, gaussian_preact, init, meanfield as mf,
                     resnet_theory as rmf, runtime, spectra, stats, train)
from sigprop import ensemble

NAN, INF = float("nan"), float("inf")
CLEAR_TYPES = (ValueError, TypeError, FileNotFoundError, FileExistsError, data.ChecksumError)
SIGPROP_DIR = str(Path(sigprop.__file__).resolve().parent)

RESULTS: list = []


def _raised_in_sigprop(exc: BaseException) -> bool:
    tb = traceback.extract_tb(exc.__traceback__)
    return bool(tb) and str(Path(tb[-1].filename).resolve()).startswith(SIGPROP_DIR)


# Arguments whose check may name the quantity instead of the parameter.
ALIASES = {"prefer": "device", "device_": "device", "override": "scale", "c0": "c"}


def _classify_error(exc: BaseException, arg: str) -> str:
    msg = str(exc)
    tb = traceback.extract_tb(exc.__traceback__)
    if tb and Path(tb[-1].filename).resolve() == Path(__file__).resolve():
        return "clear"  # the user's own code raised (a loss, a model): passed through unchanged
    names_it = arg is None or arg.lower() in msg.lower() or ALIASES.get(arg, "\0").lower() in msg.lower()
    ours = _raised_in_sigprop(exc)
    if isinstance(exc, CLEAR_TYPES) and ours and names_it:
        return "clear"
    if isinstance(exc, RuntimeError) and ours and names_it and type(exc).__module__.startswith(("sigprop", "builtins")):
        return "clear"
    return "deep"


def attempt(label: str, call, arg: str | None, *, ok=None, state=None, warn_ok: bool = False):
    """Run ``call()``; it should refuse (name ``arg``), or when ``ok`` is given, return a result
    for which ``ok(result)`` holds. ``state()`` returns a snapshot compared before and after."""
    before = state() if state else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001 - classifying every outcome is the point
            outcome = _classify_error(exc, arg)
            detail = f"{type(exc).__name__}: {str(exc)[:160]}"
        else:
            named = [w for w in caught if arg is None or arg.lower() in str(w.message).lower()]
            if warn_ok and named:
                outcome, detail = "clear", f"warned: {str(named[0].message)[:120]}"
            elif ok is not None:
                try:
                    good, why = bool(ok(result)), ""
                except Exception as exc:  # noqa: BLE001
                    good, why = False, f" (check failed: {exc!r})"
                outcome = "clear" if good else "silent"
                detail = "ok" if good else f"returned {str(result)[:120]}{why}"
            else:
                outcome, detail = "silent", f"returned {str(result)[:120]}"
    if state is not None:
        after = state()
        if not _same(before, after):
            outcome, detail = "state", f"{detail} (and changed the user's state)"
    RESULTS.append((label, outcome, detail))


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


# ----------------------------------------------------------------------------- bad values
BAD_REAL = [("nan", NAN), ("inf", INF), ("-1", -1.0), ("str", "1.0"), ("None", None), ("complex", 1 + 1j)]
BAD_VAR = [("nan", NAN), ("-1", -1.0), ("str", "1.0"), ("None", None), ("complex", 1 + 1j)]
BAD_INT = [("-1", -1), ("2.5", 2.5), ("str", "3"), ("nan", NAN), ("None", None)]
BAD_THETA = [("nan", NAN), ("-1", -1.0), ("str", "3.0"), ("None", None), ("complex", 1 + 1j), ("zero", 0.0),
             ("2.005", 2.005)]
BAD_C = [("nan", NAN), ("inf", INF), ("1.5", 1.5), ("str", "0.5"), ("None", None), ("complex", 0.5j)]
BAD_ACT = [("unknown", "nope"), ("int", 3), ("None", None)]
BAD_GEN = [("int", 0), ("str", "g")]
BAD_DEVICE = [("meta", "meta"), ("nonsense", "gpu7"), ("int", 3.5)] + (
    [] if torch.cuda.is_available() else [("cuda-missing", "cuda")])
BAD_DTYPE = [("int64", torch.int64), ("str", "float32")]


def sweep(name: str, fn, base: dict, bad: dict):
    """One attempt per (argument, bad value): the call with that argument replaced."""
    for arg, values in bad.items():
        for tag, value in values:
            kwargs = {**base, arg: value}
            attempt(f"{name}({arg}={tag})", lambda kwargs=kwargs: fn(**kwargs), arg)


def meanfield_attempts():
    sw_sb = {"sigma_w": BAD_REAL, "sigma_b": BAD_REAL, "act": BAD_ACT}
    sweep("mf.q_map", mf.q_map, dict(act="tanh", q=1.0, sigma_w=1.5, sigma_b=0.3), {**sw_sb, "q": BAD_VAR})
    sweep("mf.q_map_slope", mf.q_map_slope, dict(act="tanh", q=1.0, sigma_w=1.5, sigma_b=0.3), {**sw_sb, "q": BAD_VAR})
    sweep("mf.q_star", mf.q_star, dict(act="tanh", sigma_w=1.5, sigma_b=0.3), {**sw_sb, "q0": BAD_VAR})
    sweep("mf.chi_1", mf.chi_1, dict(act="tanh", sigma_w=1.5, sigma_b=0.3),
          {**sw_sb, "q": [v for v in BAD_VAR if v[0] != "None"]})  # q=None means q*
    for name in ("c_star", "chi_c", "xi_q", "xi_c"):
        sweep(f"mf.{name}", getattr(mf, name), dict(act="tanh", sigma_w=1.5, sigma_b=0.3), sw_sb)
    sweep("mf.c_map", mf.c_map, dict(act="tanh", c=0.5, q=1.0, sigma_w=1.5, sigma_b=0.3),
          {**sw_sb, "c": BAD_C})
    sweep("mf.eoc_sigma_w", mf.eoc_sigma_w, dict(act="tanh", sigma_b=0.3), {"sigma_b": BAD_REAL, "act": BAD_ACT})
    sweep("mf.iterate_q", mf.iterate_q, dict(act="tanh", q0=1.0, sigma_w=1.5, sigma_b=0.3, depth=5),
          {"depth": BAD_INT, "q0": BAD_VAR, "sigma_w": BAD_REAL})
    sweep("mf.iterate_c", mf.iterate_c, dict(act="tanh", c0=0.5, q0=1.0, sigma_w=1.5, sigma_b=0.3, depth=5),
          {"depth": BAD_INT, "c0": BAD_C})
    sweep("mf.phase_diagram", mf.phase_diagram, dict(act="tanh", sigma_w=[1.0, 2.0], sigma_b=[0.1]),
          {"sigma_w": [("nan", [NAN]), ("neg", [-1.0]), ("2-D", [[1.0]]), ("str", ["a"])], "act": BAD_ACT})
    sweep("rmf.resnet_mean_field", rmf.resnet_mean_field, dict(act="relu", sigma_w=1.0, depth=5),
          {"depth": BAD_INT, "sigma_w": BAD_REAL, "act": BAD_ACT})
    # the documented conventions must hold
    attempt("mf.chi_1(relu at q*=0) == phase_diagram", lambda: mf.chi_1("relu", 1.0, 0.0), None,
            ok=lambda r: abs(r - float(mf.phase_diagram("relu", [1.0], [0.0]).chi_1)) < 1e-12)
    attempt("mf.xi_c(relu at q*=0) finite and == phase_diagram", lambda: mf.xi_c("relu", 1.0, 0.0), None,
            ok=lambda r: abs(r - float(mf.phase_diagram("relu", [1.0], [0.0], correlations=True).xi_c)) < 1e-9)
    attempt("mf.chi_1(abs at q*=0) == phase_diagram", lambda: mf.chi_1("abs", 0.5, 0.0), None,
            ok=lambda r: abs(r - float(mf.phase_diagram("abs", [0.5], [0.0]).chi_1)) < 1e-12)
    attempt("mf.q_star(tanh, q0=1e12)", lambda: mf.q_star("tanh", 1.5, 0.1, q0=1e12), None,
            ok=lambda r: abs(r - 0.8133223268568669) < 1e-9)
    attempt("mf.q_star(tanh, q0=1e-12)", lambda: mf.q_star("tanh", 1.5, 0.1, q0=1e-12), None,
            ok=lambda r: abs(r - 0.8133223268568669) < 1e-9)
    attempt("mf.eoc_sigma_w(gelu, 0.1) unstable", lambda: mf.eoc_sigma_w("gelu", 0.1), "unstable", warn_ok=True)


def explore_attempts():
    for fn in (explore.map_explorer, explore.phase_explorer):
        for arg, value in (("sigma_w", 10.0), ("sigma_b", 5.0), ("sigma_w", 0.0)):
            # the slider must show the value asked for (not clamp it silently), or warn
            attempt(f"explore.{fn.__name__}({arg}={value}) keeps the value", lambda fn=fn, arg=arg, value=value:
                    fn(**{arg: value}), arg, warn_ok=True,
                    ok=lambda ex, arg=arg, value=value: ex.params[arg] == value and (
                        not ex.controls or ex.controls[arg].value == value))
    sweep("explore.map_figure", explore.map_figure, dict(act="tanh", sigma_w=1.5, sigma_b=0.3),
          {"sigma_w": BAD_REAL, "sigma_b": BAD_REAL, "act": BAD_ACT})
    sweep("explore.mean_field_point", explore.mean_field_point, dict(act="tanh", sigma_w=1.5, sigma_b=0.3),
          {"sigma_w": BAD_REAL, "act": BAD_ACT})
    sweep("explore.phase_figure", explore.phase_figure, dict(act="tanh", resolution=20),
          {"resolution": BAD_INT + [("huge", 10**6)], "depth": BAD_INT})


def gaussian_attempts():
    f = lambda u: torch.tanh(u) ** 2  # noqa: E731
    sweep("gaussian.expect", gaussian.expect, dict(f=f, q=1.0),
          {"q": BAD_VAR + [("tensor-nan", torch.tensor([1.0, NAN]))], "f": [("not-callable", 3)],
           "breakpoints": [("nan", [NAN]), ("str", "ab")]})
    sweep("gaussian.expect2", gaussian.expect2, dict(f=lambda a, b: a * b, q1=1.0, q2=1.0, q12=0.5),
          {"q1": BAD_VAR, "q12": [("too-big", 2.0), ("nan", NAN)]})
    sweep("gaussian.hermite_expect", gaussian.hermite_expect, dict(f=f, q=1.0), {"q": BAD_VAR, "n": BAD_INT})


def gaussian_preact_attempts():
    x = torch.linspace(-2, 2, 5)
    for theta in (2.0, 3.0):
        for fn in (gaussian_preact.phi, gaussian_preact.phi_derivative):
            # an activation: nan propagates (as in torch), +-inf give the limits
            attempt(f"gp.{fn.__name__}(x=nan, theta={theta})", lambda fn=fn, theta=theta: fn(torch.tensor([0.5, NAN]), theta),
                    "x", ok=lambda r: bool(torch.isnan(r[1])) and bool(torch.isfinite(r[0])))
            attempt(f"gp.{fn.__name__}(x=inf, theta={theta})", lambda fn=fn, theta=theta: fn(torch.tensor([INF, -INF]), theta),
                    "x", ok=lambda r: not bool(torch.isnan(r).any()))
    sweep("gp.phi", gaussian_preact.phi, dict(x=x, theta=3.0),
          {"x": [("complex", torch.tensor([1 + 1j])), ("complex-scalar", 1 + 1j), ("str", "x"), ("None", None)],
           "theta": BAD_THETA, "family": [("unknown", "nope"), ("int", 3)]})
    sweep("gp.phi_derivative", gaussian_preact.phi_derivative, dict(x=x, theta=3.0),
          {"x": [("complex", torch.tensor([1 + 1j])), ("str", "x")], "theta": BAD_THETA})
    for name in ("q_pdf", "q_cdf", "q_survival", "weibull_pdf", "weibull_cdf"):
        bad = BAD_THETA if name.startswith("q_") else BAD_REAL[:1] + BAD_THETA[1:6]  # Weibull: any theta > 0
        sweep(f"gp.{name}", getattr(gaussian_preact, name), {("y" if name.startswith("q_") else "t"): x.abs() + 0.1,
              "theta": 3.0}, {"theta": bad})
    for name in ("weibull_sample", "q_sample"):
        sweep(f"gp.{name}", getattr(gaussian_preact, name), dict(shape=(3,), theta=3.0),
              {"theta": BAD_THETA if name == "q_sample" else BAD_THETA[:6], "generator": BAD_GEN, "device": BAD_DEVICE, "dtype": BAD_DTYPE,
               "shape": [("neg", (-1,)), ("str", "3")]})
    sweep("gp.propagate", gaussian_preact.propagate, dict(depth=2, width=8, n_nets=2, theta=3.0),
          {"depth": BAD_INT, "width": BAD_INT, "n_nets": BAD_INT, "theta": BAD_THETA, "generator": BAD_GEN,
           "device": BAD_DEVICE, "sigma_w": BAD_REAL})
    sweep("gp.make_mlp", gaussian_preact.make_mlp, dict(widths=[4, 4], theta=3.0),
          {"widths": [("neg", [4, -1]), ("float", [4, 2.5]), ("empty", [])], "theta": BAD_THETA, "generator": BAD_GEN})
    sweep("gp.chi_1_theta", gaussian_preact.chi_1_theta, dict(theta=3.0), {"theta": BAD_THETA, "family": [("unknown", "x")]})
    sweep("gp.c_map_theta", gaussian_preact.c_map_theta, dict(c=0.5, theta=3.0), {"c": BAD_C, "theta": BAD_THETA})


def init_attempts():
    for name in ("xavier_normal", "he_uniform", "orthogonal", "lecun_normal"):
        fn = getattr(init, name)
        sweep(f"init.{name}", fn, dict(shape=(4, 3)),
              {"shape": [("neg", (4, -3)), ("str", "4x3"), ("empty", ())], "generator": BAD_GEN,
               "device": BAD_DEVICE, "dtype": BAD_DTYPE, "gain": BAD_REAL})
    sweep("init.weight_variance", init.weight_variance, dict(name="he_normal", fan_in=4, fan_out=3),
          {"fan_in": BAD_INT, "name": [("unknown", "nope")], "gain": BAD_REAL})


def stats_attempts():
    x = torch.randn(50)
    for name in ("kurtosis", "moments", "ks_distance_normal", "effective_rank"):
        fn = getattr(stats, name)
        base = dict(x=torch.randn(20, 5)) if name == "effective_rank" else dict(x=x)
        sweep(f"stats.{name}", fn, base, {"x": [("complex", torch.tensor([1 + 1j, 2j])), ("empty", torch.empty(0)),
                                                ("str", "x")]})
    for name in ("kurtosis", "ks_distance_normal"):
        fn = getattr(stats, name)
        # statistics of data: nan propagates (as in torch.mean); a list or an integer tensor is data too
        attempt(f"stats.{name}(x=nan) propagates", lambda fn=fn: fn(torch.tensor([1.0, NAN, 2.0, 3.0])), "x",
                ok=lambda r: bool(torch.isnan(r)))
        attempt(f"stats.{name}(x=list) == tensor", lambda fn=fn: fn([1.0, 2.0, 4.0, 8.0]), "x",
                ok=lambda r, fn=fn: torch.allclose(r.double(), fn(torch.tensor([1.0, 2.0, 4.0, 8.0])).double()))
        attempt(f"stats.{name}(x=int tensor) == float", lambda fn=fn: fn(torch.arange(6)), "x",
                ok=lambda r, fn=fn: torch.allclose(r.double(), fn(torch.arange(6).double()).double()))
    sweep("stats.ks_critical_value", stats.ks_critical_value, dict(n=100), {"n": BAD_INT, "alpha": BAD_REAL + [("one", 1.0)]})
    sweep("stats.raw_moment", stats.raw_moment, dict(x=x, p=4), {"p": BAD_INT})
    sweep("stats.fit_exponential_rate", stats.fit_exponential_rate, dict(depth=[1, 2, 3], values=[1.0, 0.5, 0.25]),
          {"values": [("neg", [1.0, -0.5, 0.25]), ("nan", [1.0, NAN, 0.2]), ("short", [1.0])]})


def runtime_attempts():
    sweep("runtime.device", runtime.device, {}, {"prefer": BAD_DEVICE})
    sweep("runtime.generator", runtime.generator, {}, {"seed": [("-1", -1), ("float", 1.5), ("str", "0")],
                                                       "device_": BAD_DEVICE})
    sweep("runtime.scale", runtime.scale, {}, {"override": [("unknown", "huge"), ("int", 3)]})
    old = os.environ.get("SIGPROP_DEVICE")
    for value in ("meta", "gpu7", "cuda:9"):
        os.environ["SIGPROP_DEVICE"] = value
        attempt(f"SIGPROP_DEVICE={value} runtime.device()", lambda: runtime.device(), "SIGPROP_DEVICE")
    if old is None:
        os.environ.pop("SIGPROP_DEVICE", None)
    else:
        os.environ["SIGPROP_DEVICE"] = old


def critique_attempts():
    sweep("critique.sample_preactivations", critique.sample_preactivations,
          dict(act="tanh", sigma_w=1.5, sigma_b=0.3, width=8, depth=2, n_nets=2),
          {"width": BAD_INT, "depth": BAD_INT, "n_nets": BAD_INT, "sigma_w": BAD_REAL, "generator": BAD_GEN,
           "device": BAD_DEVICE, "weights": [("unknown", "nope")], "act": BAD_ACT})
    sweep("critique.kurtosis_prediction", critique.kurtosis_prediction,
          dict(act="tanh", sigma_w=1.5, sigma_b=0.3, width=8, depth=2), {"width": BAD_INT, "depth": BAD_INT, "sigma_w": BAD_REAL})
    sweep("critique.variance_map_fixed_points", critique.variance_map_fixed_points, dict(act="tanh", sigma_w=1.5),
          {"sigma_w": BAD_REAL, "n_grid": BAD_INT})


def ensemble_attempts():
    x = torch.randn(4, 6)
    for arg, values in {"depth": BAD_INT, "width": BAD_INT, "sigma_w": BAD_REAL, "n_nets": BAD_INT,
                        "act": BAD_ACT, "init": [("unknown", "nope")]}.items():
        for tag, value in values:
            kw = {**dict(depth=2, width=8, act="tanh", sigma_w=1.5, sigma_b=0.3), arg: value}
            attempt(f"ensemble.MLPConfig({arg}={tag})",
                    lambda kw=kw: ensemble.propagate_mlp(x, ensemble.MLPConfig(**kw)), arg)
    config = ensemble.MLPConfig(depth=2, width=8, act="tanh", sigma_w=1.5, sigma_b=0.3)
    sweep("ensemble.propagate_mlp", ensemble.propagate_mlp, dict(x=x, config=config),
          {"x": [("nan", torch.full((4, 6), NAN)), ("1-D", torch.randn(6)), ("complex", torch.randn(4, 6) * 1j)],
           "generator": BAD_GEN, "device": BAD_DEVICE, "method": [("unknown", "nope")]})


def train_attempts():
    sweep("train.make_mlp", train.make_mlp, dict(widths=[4, 4, 2], act="tanh"),
          {"widths": [("neg", [4, -1]), ("short", [4])], "act": BAD_ACT, "init": [("unknown", "nope")],
           "gain": BAD_REAL, "generator": BAD_GEN})
    model = train.make_mlp([4, 8, 3], "tanh")
    xy = (torch.randn(16, 4), torch.randint(0, 3, (16,)))
    sweep("train.train_classifier", train.train_classifier, dict(model=model, train=xy, steps=1, lr=0.1),
          {"steps": BAD_INT, "lr": BAD_REAL, "batch_size": BAD_INT,
           "train": [("bad-labels", (torch.randn(16, 4), torch.full((16,), 7))), ("float-labels", (xy[0], xy[1].float()))]})


def spectra_attempts():
    sweep("spectra.jacobian_spectrum_variance", spectra.jacobian_spectrum_variance,
          dict(act="tanh", sigma_w=1.5, sigma_b=0.3, depth=3), {"depth": BAD_INT, "sigma_w": BAD_REAL})
    sweep("rmf.resnet_spectral_edges", rmf.resnet_spectral_edges, dict(a=0.5), {"a": BAD_REAL})
    sweep("rmf.resnet_spectral_density", rmf.resnet_spectral_density, dict(x=torch.linspace(0.1, 2, 5), a=0.5),
          {"a": BAD_REAL, "x": [("nan", torch.tensor([NAN])), ("complex", torch.tensor([1j]))]})


def diagnose_attempts():
    def model_state(model):
        return lambda: ({k: v.detach().clone() for k, v in model.state_dict().items()},
                        [m.training for m in model.modules()], torch.get_rng_state(),
                        [len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules()])

    def bn_net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3)).train()

    x = torch.randn(32, 6)
    m = bn_net()
    attempt("diagnose(training-mode BN + Dropout) leaves the model", lambda: sigprop.diagnose(m, x), None,
            ok=lambda r: len(r.rows) == 3, state=model_state(m))
    m2 = bn_net()

    def bad_loss(out):
        raise ValueError("the user's loss failed: loss")
    attempt("diagnose(loss raises) leaves the model", lambda: sigprop.diagnose(m2, x, loss=bad_loss), "loss",
            state=model_state(m2))

    class Rec(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = nn.LSTM(4, 8, batch_first=True), nn.Linear(8, 2)

        def forward(self, z):
            return self.head(self.lstm(z)[0])
    attempt("diagnose(LSTM) names the layer it skips", lambda: sigprop.diagnose(Rec(), torch.randn(3, 5, 4)), None,
            ok=lambda r: any("lstm" in n.lower() for n in r.notes))

    class Dict(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, z):
            return {"logits": self.lin(z)}
    attempt("diagnose(dict output)", lambda: sigprop.diagnose(Dict(), torch.randn(8, 4)), "dict")
    attempt("diagnose(unbatched vector)", lambda: sigprop.diagnose(nn.Sequential(nn.Linear(20, 5)), torch.randn(20)),
            "unbatched")
    attempt("diagnose(unbatched image)", lambda: sigprop.diagnose(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(0), nn.Linear(144, 2)), torch.randn(3, 8, 8)), "unbatched")
    net = nn.Sequential(nn.Linear(6, 4))
    sweep("diagnose", sigprop.diagnose, dict(model=net, inputs=x),
          {"alpha": [("zero", 0.0), ("one", 1.0), ("nan", NAN), ("str", "0.05")], "seed": [("-1", -1), ("float", 1.5)],
           "max_values": [("small", 3), ("float", 100.5)], "model": [("not-a-module", lambda z: z)],
           "layers": [("unknown-name", ["nope"]), ("int", [3])]})


def data_attempts(tmp: Path):
    def files(folder: Path):
        return lambda: {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
                        if p.is_file() and not p.name.startswith(".sigprop")}

    sweep("data.load", data.load, dict(name="digits"), {"name": [("unknown", "imagenet"), ("int", 3)],
                                                       "split": [("unknown", "valid")],
                                                       "n": [v for v in BAD_INT if v[0] != "None"] + [("zero", 0)]})
    # CIFAR-10: a download must not replace the user's files, and removes its archive
    served = tmp / "served" / "cifar.tar.gz"
    served.parent.mkdir(parents=True)
    with tarfile.open(served, "w:gz") as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin", "batches.meta.txt"]:
            payload = (bytes([3]) + bytes(3072)) * 2 if name.endswith(".bin") else "\n".join(
                f"c{k}" for k in range(10)).encode()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    data.CIFAR10_URL, data.CIFAR10_MD5 = served.as_uri(), hashlib.md5(served.read_bytes()).hexdigest()
    root = tmp / "cifar-root"
    user = root / "cifar10" / "cifar-10-batches-bin"
    user.mkdir(parents=True)
    (user / "data_batch_1.bin").write_bytes((bytes([1]) + bytes(range(256)) * 12) * 3)
    (user / "batches.meta.txt").write_text("\n".join(f"mine{k}" for k in range(10)))
    mine = [user / "data_batch_1.bin", user / "batches.meta.txt"]
    attempt("data.load(cifar10 test, download) keeps the user's batch files",
            lambda: data.load("cifar10", "test", root=root, download=True, device="cpu"), None,
            ok=lambda d: not (root / "cifar10" / "cifar-10-binary.tar.gz").exists(),
            state=lambda: [p.read_bytes() for p in mine])
    # MNIST: a failed download must not delete a .part file the user had
    mroot = tmp / "mnist-root"
    (mroot / "mnist").mkdir(parents=True)
    (mroot / "mnist" / "t10k-images-idx3-ubyte.gz.part").write_bytes(b"mine")
    saved = data.MNIST_MIRRORS
    data.MNIST_MIRRORS = [(tmp / "nowhere").as_uri() + "/"]
    attempt("data.load(mnist, failed download) keeps a .part file", lambda: data.load(
        "mnist", root=mroot, download=True), "download", state=files(mroot))
    data.MNIST_MIRRORS = saved
    # corrupt or altered files
    croot = tmp / "corrupt"
    (croot / "mnist").mkdir(parents=True)
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (croot / "mnist" / f).write_bytes(b"\x1f\x8b\x08\x00" + bytes(30))
    attempt("data.load(truncated .gz) names path and repair", lambda: data.load("mnist", root=croot),
            "t10k-images-idx3-ubyte.gz")
    attempt("data.read_idx(truncated .gz) names the path", lambda: data.read_idx(croot / "mnist" / "t10k-images-idx3-ubyte.gz"),
            "t10k-images-idx3-ubyte.gz")
    proot = tmp / "prefix"
    path = proot / "cifar10" / "test_batch_first2.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes((bytes([2]) + bytes(3072)) * 2)
    data.load("cifar10", root=proot, device="cpu")
    path.write_bytes((bytes([2]) + bytes(3071) + b"\x01") * 2)  # altered after first use
    attempt("data.load(file altered after first use)", lambda: data.load("cifar10", root=proot, device="cpu"),
            "test_batch_first2.bin")
    lroot = tmp / "labels"
    (lroot / "mnist").mkdir(parents=True)
    for f, arr in (("t10k-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8)), ("t10k-labels-idx1-ubyte", np.array([1, 42], np.uint8))):
        raw = bytes([0, 0, 8, arr.ndim]) + np.asarray(arr.shape, ">i4").tobytes() + arr.tobytes()
        (lroot / "mnist" / f).write_bytes(raw)  # uncompressed copies: no published sum
    attempt("data.load(mnist labels out of range)", lambda: data.load("mnist", root=lroot, device="cpu"), "labels")
    dest = tmp / "mine.bin"
    dest.write_bytes(b"mine")
    src = tmp / "served.bin"
    src.write_bytes(b"new")
    attempt("data.download_file(over an existing file)", lambda: data.download_file(
        src.as_uri(), dest, hashlib.md5(b"new").hexdigest()), str(dest.name), state=lambda: dest.read_bytes())
    sweep("data.class_balanced_subset", data.class_balanced_subset,
          dict(dataset=data.load("digits", device="cpu"), per_class=2, generator=torch.Generator()),
          {"per_class": BAD_INT + [("too-many", 10**6)], "generator": BAD_GEN})
    sweep("data.standardize", data.standardize, dict(images=torch.rand(5, 3)),
          {"images": [("1-sample", torch.rand(1, 3)), ("nan", torch.full((4, 3), NAN)), ("constant", torch.ones(4, 3))]})


def registry_attempts():
    """Every case of the bad-input registry of tests/test_bad_input.py (one or more bad calls of
    every public callable, keyed by name): each call is an attempt, classified as above. Known
    gaps (cases that test file expects to fail) are attempted too, so that they are counted."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "tests" / "test_bad_input.py"
    spec = importlib.util.spec_from_file_location("_sigprop_bad_input_registry", path)
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec.loader.exec_module(module)
    for i, (key, arg, call, why) in enumerate(module.CASES):
        for obj in module.resolve(key) or [None]:
            if obj is None:
                RESULTS.append((f"registry {key}({arg}) #{i}", "deep", "no public callable of that name"))
                continue
            # a refused call must leave the global random state as it was
            attempt(f"registry {key}({arg}) #{i}" + (" [known gap]" if why else ""),
                    lambda call=call, obj=obj: call(obj), arg, state=lambda: (torch.get_rng_state(), torch.from_numpy(np.random.get_state()[1].copy())))


# Work that runs for minutes or exhausts memory: each in a child process with a time and
# memory limit. A refusal that gives the estimate is 'clear'.
GUARDS = {
    "gaussian.expect(1e7 points)": "from sigprop import gaussian; import torch; "
                                   "gaussian.expect(lambda u: torch.tanh(u)**2, torch.rand(10**7) + 0.5)",
    "mf.iterate_q(depth=1e7)": "from sigprop import meanfield as mf; mf.iterate_q('tanh', 1.0, 1.5, 0.3, 10**7)",
    "critique.sample_preactivations(width 20000, depth 1e5, 100 nets)": "from sigprop import critique; "
        "critique.sample_preactivations('tanh', 1.5, 0.3, 20000, 100000, 100)",
    "gp.propagate(width 20000, depth 1e5)": "from sigprop import gaussian_preact as gp; gp.propagate(100000, 20000, 4, theta=3.0)",
    "spectra.input_output_jacobian(width 20000)": "from sigprop import spectra, ensemble; "
        "spectra.input_output_jacobian(ensemble.MLPConfig(depth=50, width=20000, act='tanh', sigma_w=1.5))",
    "mf.phase_diagram(3000 x 3000, correlations)": "from sigprop import meanfield as mf; import torch; "
        "mf.phase_diagram('tanh', torch.linspace(0.5, 4, 3000), torch.linspace(0, 2, 3000), correlations=True)",
    "stats.correlation_matrix(2e5 inputs)": "from sigprop import stats; import torch; stats.correlation_matrix(torch.randn(200000, 8))",
    "explore.phase_figure(resolution=5000)": "from sigprop import explore; explore.phase_figure(resolution=5000)",
    "init.gaussian((1e5, 1e5))": "from sigprop import init; init.gaussian((100000, 100000))",
    "gp.weibull_sample((1e6, 1e5))": "from sigprop import gaussian_preact as gp; gp.weibull_sample((10**6, 10**5), 3.0)",
    "train.make_mlp([50000] * 10)": "from sigprop import train; train.make_mlp([50000] * 10, 'tanh')",
    "ensemble.propagate_mlp(width 50000)": "from sigprop import ensemble; import torch; "
        "ensemble.propagate_mlp(torch.randn(8, 100), ensemble.MLPConfig(depth=1000, width=50000, act='tanh'))",
    "ensemble.propagate_resnet(width 50000)": "from sigprop import ensemble; "
        "ensemble.propagate_resnet(ensemble.ResNetConfig(depth=1000, width=50000, act='tanh', sigma_w=1.0))",
    "ensemble.make_resnet(width 50000)": "from sigprop import ensemble; "
        "ensemble.make_resnet(100, 10, ensemble.ResNetConfig(depth=100, width=50000, act='tanh', sigma_w=1.0))",
    "resnet_theory.resnet_mean_field(depth 1e8)": "from sigprop import resnet_theory as r; r.resnet_mean_field('tanh', 1.0, 10**8)",
    "mf.layer_variances(depth 1e6)": "from sigprop import meanfield as mf; mf.layer_variances('tanh', 1.0, [1.5] * 10**6)",
    "stats.class_correlation_matrix(1e9 classes)": "from sigprop import stats; import torch; "
        "stats.class_correlation_matrix(torch.eye(2), torch.tensor([0, 1]), 10**9)",
    "ensemble.prepare_inputs(1e7 nets)": "from sigprop import ensemble; import torch; "
        "ensemble.prepare_inputs(torch.rand(100, 3, 8, 8), 10**7, 50)",
}


def guard_attempts(timeout: float, mem_gb: float):
    for label, code in GUARDS.items():
        script = textwrap.dedent(f"""
            import resource, sys
            resource.setrlimit(resource.RLIMIT_AS, ({int(mem_gb * 2**30)}, {int(mem_gb * 2**30)}))
            try:
                {code}
            except MemoryError:
                print("OUTCOME unguarded: MemoryError"); sys.exit(0)
            except Exception as exc:
                msg = str(exc)
                if "allocate" in msg:  # the allocation itself failed (here: under the memory limit)
                    print("OUTCOME unguarded:", msg[:160].replace(chr(10), " ")); sys.exit(0)
                ok = any(w in msg for w in ("estimate", "budget", "SIGPROP_MAX"))
                print("OUTCOME", "clear" if ok else "deep", type(exc).__name__, msg[:160].replace(chr(10), " "))
                sys.exit(0)
            print("OUTCOME clear: finished within the limits")
        """)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        try:
            proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, env=env)
            line = next((l for l in proc.stdout.splitlines() if l.startswith("OUTCOME")), None)
            if line is None:
                outcome, detail = "unguarded", f"crashed: {(proc.stderr or '')[-160:]}"
            else:
                outcome, detail = line.split()[1].rstrip(":"), line[8:]
        except subprocess.TimeoutExpired:
            outcome, detail = "unguarded", f"still running after {timeout:.0f} s"
        RESULTS.append((label, outcome, detail))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--verbose", action="store_true", help="print every attempt that is not clear")
    parser.add_argument("--no-guards", action="store_true", help="skip the child-process budget attempts")
    parser.add_argument("--guard-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    groups = [meanfield_attempts, explore_attempts, gaussian_attempts, gaussian_preact_attempts, init_attempts,
              stats_attempts, runtime_attempts, critique_attempts, ensemble_attempts, train_attempts,
              spectra_attempts, diagnose_attempts, registry_attempts]
    for group in groups:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                group()
        except Exception as exc:  # noqa: BLE001 - a broken group is reported, the run goes on
            RESULTS.append((group.__name__, "deep", f"the group itself failed: {exc!r}"))
    with tempfile.TemporaryDirectory() as tmp:
        try:
            data_attempts(Path(tmp))
        except Exception as exc:  # noqa: BLE001
            RESULTS.append(("data_attempts", "deep", f"the group itself failed: {exc!r}"))
    if not args.no_guards:
        guard_attempts(args.guard_timeout, mem_gb=4.0)
    counts = Counter(outcome for _, outcome, _ in RESULTS)
    if args.verbose:
        for label, outcome, detail in RESULTS:
            if outcome != "clear":
                print(f"{outcome:9s} {label}: {detail}")
    print(f"attempts: {len(RESULTS)}")
    gaps = Counter(outcome for label, outcome, _ in RESULTS if "[known gap]" in label)
    for key in ("clear", "deep", "silent", "state", "unguarded"):
        known = f" ({gaps[key]} of them known gaps, listed in tests/test_bad_input.py)" if key != "clear" and gaps[key] else ""
        print(f"  {key:9s} {counts.get(key, 0)}{known}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
