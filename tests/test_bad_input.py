"""Bad input is refused at the public call, with a message naming the argument (issue 17).

Property-based where the space of bad values is large (hypothesis draws the numbers); the
rest are listed. Every refusal must be a ValueError raised by sigprop itself (not an
IndexError or AttributeError from torch ten frames down), whose message names the argument.
The full sweep over the public API is tools/hostile_run.py; this file keeps its promises in CI.
"""
from __future__ import annotations

import math
import os
import traceback
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sigprop
from sigprop import _checks, critique, explore, gaussian, gaussian_preact as gp, init, meanfield as mf, runtime, stats
from sigprop import ensemble

SIGPROP_DIR = Path(sigprop.__file__).resolve().parent
SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# values that are never a real number: strings, None, complex numbers, booleans
NOT_REAL = st.one_of(st.text(max_size=3), st.none(), st.complex_numbers(min_magnitude=1e-3, allow_nan=False,
                     allow_infinity=False), st.booleans())
NEGATIVE = st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False)
NOT_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
NOT_AN_INT = st.one_of(st.floats(allow_nan=True).filter(lambda v: not float(v).is_integer() if math.isfinite(v) else True),
                       st.text(max_size=2), st.none(), st.booleans())


def refused(call, name: str):
    """The call raises a ValueError from sigprop's own code, naming ``name``."""
    with pytest.raises(ValueError) as info:
        call()
    frame = traceback.extract_tb(info.value.__traceback__)[-1]
    assert Path(frame.filename).resolve().is_relative_to(SIGPROP_DIR), f"raised in {frame.filename}"
    assert name.lower() in str(info.value).lower(), f"{name!r} not named in: {info.value}"
    return info.value


MEANFIELD = [
    ("q_star", lambda **k: mf.q_star(**{"act": "tanh", "sigma_w": 1.5, "sigma_b": 0.3, **k})),
    ("chi_1", lambda **k: mf.chi_1(**{"act": "tanh", "sigma_w": 1.5, "sigma_b": 0.3, **k})),
    ("xi_c", lambda **k: mf.xi_c(**{"act": "tanh", "sigma_w": 1.5, "sigma_b": 0.3, **k})),
    ("q_map", lambda **k: mf.q_map(**{"act": "tanh", "q": 1.0, "sigma_w": 1.5, "sigma_b": 0.3, **k})),
    ("c_map", lambda **k: mf.c_map(**{"act": "tanh", "c": 0.5, "q": 1.0, "sigma_w": 1.5, "sigma_b": 0.3, **k})),
]


@pytest.mark.parametrize("fn", [f for _, f in MEANFIELD], ids=[n for n, _ in MEANFIELD])
@pytest.mark.parametrize("arg", ["sigma_w", "sigma_b"])
@SETTINGS
@given(value=st.one_of(NOT_REAL, NEGATIVE, NOT_FINITE))
def test_meanfield_refuses_a_bad_sigma_naming_it(fn, arg, value):
    refused(lambda: fn(**{arg: value}), arg)


@SETTINGS
@given(value=st.one_of(NOT_REAL, NEGATIVE, st.just(math.nan), st.just(0.0)))
def test_q_star_refuses_a_bad_starting_length(value):
    refused(lambda: mf.q_star("tanh", 1.5, 0.3, q0=value), "q0")


@SETTINGS
@given(depth=NOT_AN_INT)
def test_iterate_q_refuses_a_depth_that_is_not_an_integer(depth):
    refused(lambda: mf.iterate_q("tanh", 1.0, 1.5, 0.3, depth), "depth")


@SETTINGS
@given(c=st.one_of(st.floats(min_value=1.0 + 1e-9, allow_infinity=True), st.just(math.nan), NOT_REAL))
def test_correlation_maps_refuse_correlations_outside_minus_one_one(c):
    refused(lambda: mf.c_map("tanh", c, 1.0, 1.5, 0.3), "c")
    refused(lambda: mf.iterate_c("tanh", c, 1.0, 1.5, 0.3, 3), "c0")


@SETTINGS
@given(q=st.one_of(NOT_REAL, NEGATIVE, NOT_FINITE))
def test_gaussian_expectations_refuse_a_bad_variance(q):
    refused(lambda: gaussian.expect(torch.tanh, q), "q")
    refused(lambda: gaussian.hermite_expect(torch.tanh, q), "q")


def test_gaussian_expectations_refuse_what_is_not_a_function_or_a_node_count():
    refused(lambda: gaussian.expect(3, 1.0), "f")
    refused(lambda: gaussian.expect(torch.tanh, 1.0, breakpoints=[math.nan]), "breakpoints")
    refused(lambda: gaussian.hermite_expect(torch.tanh, 1.0, n=2.5), "n")


@SETTINGS
@given(theta=st.one_of(NOT_REAL, st.floats(max_value=2.0, exclude_max=True, allow_nan=False),
                       st.floats(min_value=2.0, max_value=2.01, exclude_min=True, exclude_max=True), st.just(math.nan)))
def test_phi_refuses_a_theta_with_no_activation(theta):
    refused(lambda: gp.phi(torch.zeros(3), theta), "theta")


@pytest.mark.parametrize("theta", [2.0, 3.0, math.inf])
def test_phi_propagates_nan_and_takes_the_limits_at_infinity(theta):
    x = torch.tensor([math.nan, math.inf, -math.inf, 0.5])
    for fn in (gp.phi, gp.phi_derivative):
        y = fn(x, theta)
        assert bool(torch.isnan(y[0])) and not bool(torch.isnan(y[1:]).any())
        assert float(y[3]) == pytest.approx(float(fn(torch.tensor([0.5]), theta)[0]))


def test_phi_refuses_complex_and_text_input():
    refused(lambda: gp.phi(torch.tensor([1 + 1j]), 3.0), "x")
    refused(lambda: gp.phi(1 + 1j, 3.0), "x")
    refused(lambda: gp.phi("x", 3.0), "x")


SAMPLERS = [
    ("init.he_normal", lambda **k: init.he_normal((4, 3), **k)),
    ("init.orthogonal", lambda **k: init.orthogonal((4, 3), **k)),
    ("gp.weibull_sample", lambda **k: gp.weibull_sample((3,), 3.0, **k)),
    ("gp.propagate", lambda **k: gp.propagate(2, 4, 2, theta=3.0, **k)),
    ("critique.sample_preactivations", lambda **k: critique.sample_preactivations("tanh", 1.5, 0.3, 4, 2, 2, **k)),
    ("ensemble.propagate_mlp", lambda **k: ensemble.propagate_mlp(
        torch.randn(2, 3), ensemble.MLPConfig(depth=2, width=4, act="tanh"), **k)),
]


@pytest.mark.parametrize("fn", [f for _, f in SAMPLERS], ids=[n for n, _ in SAMPLERS])
@SETTINGS
@given(generator=st.one_of(st.integers(), st.text(max_size=2), st.floats(allow_nan=False)))
def test_samplers_refuse_a_seed_where_a_generator_belongs(fn, generator):
    refused(lambda: fn(generator=generator), "generator")


@pytest.mark.parametrize("fn", [f for _, f in SAMPLERS if _ != "ensemble.propagate_mlp"],
                         ids=[n for n, _ in SAMPLERS if n != "ensemble.propagate_mlp"])
@pytest.mark.parametrize("device", ["meta", "gpu7", 3.5] + ([] if torch.cuda.is_available() else ["cuda", "cuda:0"]))
def test_samplers_refuse_a_device_this_machine_cannot_compute_on(fn, device):
    refused(lambda: fn(device=device), "device")


@pytest.mark.parametrize("value", ["meta", "gpu7"] + ([] if torch.cuda.is_available() else ["cuda"]))
def test_sigprop_device_is_checked_when_read_and_named(monkeypatch, value):
    monkeypatch.setenv("SIGPROP_DEVICE", value)
    refused(runtime.device, "SIGPROP_DEVICE")


def test_ensemble_refuses_a_non_finite_input():
    refused(lambda: ensemble.propagate_mlp(torch.full((2, 3), math.nan), ensemble.MLPConfig(depth=2, width=4, act="tanh")),
            "x")


@SETTINGS
@given(width=st.integers(min_value=1, max_value=8), depth=st.integers(min_value=1, max_value=3))
def test_sizes_within_the_budget_run(width, depth):
    assert gp.propagate(depth, width, 2, theta=3.0, generator=torch.Generator().manual_seed(0)).shape == (depth, 2, width)


@pytest.mark.parametrize("call, what", [
    (lambda: gaussian.expect(torch.tanh, torch.full((10_000_000,), 1.0)), "gaussian.expect"),
    (lambda: mf.iterate_q("tanh", 1.0, 1.5, 0.3, 10**7), "iterate_q"),
    (lambda: gp.propagate(100_000, 20_000, 4, theta=3.0), "propagate"),
    (lambda: critique.sample_preactivations("tanh", 1.5, 0.3, 20_000, 100_000, 100), "sample_preactivations"),
    (lambda: mf.phase_diagram("tanh", torch.linspace(0.5, 4, 3000), torch.linspace(0, 2, 3000)), "phase_diagram"),
    (lambda: stats.correlation_matrix(torch.zeros(200_000, 2)), "correlation_matrix"),
    (lambda: explore.phase_figure(resolution=5000), "phase_figure"),
])
def test_work_past_the_budget_is_refused_with_its_estimate(monkeypatch, call, what):
    monkeypatch.delenv(_checks.BUDGET_ENV, raising=False)
    err = refused(call, what)
    assert "estimate is about" in str(err) and _checks.BUDGET_ENV in str(err)


def test_the_budget_can_be_raised_by_the_environment(monkeypatch):
    monkeypatch.setenv(_checks.BUDGET_ENV, "off")
    _checks.check_budget("anything", seconds=1e9, nbytes=1e15)
    monkeypatch.setenv(_checks.BUDGET_ENV, "nope")
    refused(lambda: _checks.check_budget("anything"), _checks.BUDGET_ENV)


@pytest.mark.parametrize("make", [explore.map_explorer, explore.phase_explorer])
@pytest.mark.parametrize("arg, value", [("sigma_w", 10.0), ("sigma_w", 0.0), ("sigma_b", 5.0)])
def test_explorers_never_clamp_a_value_silently(make, arg, value):
    pytest.importorskip("ipywidgets")
    ex = make(**{arg: value})
    assert ex.params[arg] == value and ex.controls[arg].value == value


@SETTINGS
@given(value=st.one_of(NOT_REAL, NEGATIVE, NOT_FINITE))
def test_explorers_refuse_bad_sigmas(value):
    refused(lambda: explore.map_figure("tanh", value, 0.3), "sigma_w")
