"""The data generator of the website's live figures (tools/live_figures.py), without a browser.

On small grids (the module's grids are patched): every stored value equals sigprop's at that
point to the stored precision, every specification is valid Vega-Lite (Altair validates it)
and names the marks that tests/test_site.py reads back, and the vendored JavaScript is there.
The browser tests of the built site are in tests/test_site.py (marker ``book``).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
lf = pytest.importorskip("live_figures")
pytest.importorskip("altair")

from sigprop import gaussian_preact as gp  # noqa: E402
from sigprop import meanfield as mf  # noqa: E402
from sigprop import resnet_theory  # noqa: E402

TOL = 1e-6


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(lf, "ACTIVATIONS", ("tanh", "relu"))
    monkeypatch.setattr(lf, "MAP_SIGMA_W", [0.5, 1.5, 2.0])
    monkeypatch.setattr(lf, "MAP_SIGMA_B", [0.0, 0.3])
    monkeypatch.setattr(lf, "PHASE_SIGMA_W", [0.5, 1.0, 1.5, 2.0])
    monkeypatch.setattr(lf, "PHASE_SIGMA_B", [0.0, 0.5])
    monkeypatch.setattr(lf, "RESNET_A", [0.01, 0.5, 1.0])
    monkeypatch.setattr(lf, "THETAS", [2.1, 5.0])
    lf.figure_data.cache_clear()
    lf.figure_spec.cache_clear()
    yield
    lf.figure_data.cache_clear()
    lf.figure_spec.cache_clear()


def close(stored, lib, what):
    stored = np.array([np.nan if v is None else v for v in stored], dtype=float)
    lib = np.asarray(lib, dtype=float).reshape(-1)
    lib = np.where(np.isfinite(lib), lib, np.nan)  # the page stores null for inf and nan
    same_nan = np.isnan(stored) == np.isnan(lib)
    assert same_nan.all(), f"{what}: missing values differ"
    ok = ~np.isnan(lib)
    err = np.abs(stored[ok] - lib[ok]) / np.maximum(1.0, np.abs(lib[ok]))
    assert err.size == 0 or err.max() <= TOL, f"{what}: off by {err.max():.1e}"


def test_length_and_correlation_maps_hold_sigprops_values(small):
    for g in lf.length_map_data()["groups"]:
        x = torch.tensor(lf.length_grid(g["qhi"]), dtype=torch.float64)
        close(g["y"], mf.q_map(g["act"], x, g["sw"], g["sb"]), f"V(q) {g['act']} {g['sw']} {g['sb']}")
        close([g["qs"]], [mf.q_star(g["act"], g["sw"], g["sb"])], "q*")
    c = torch.tensor(lf.unit_grid(-1.0, 1.0, lf.MAP_POINTS), dtype=torch.float64)
    groups = lf.correlation_map_data()["groups"]
    assert any(g["qs"] is None and g["y"] == [] for g in groups), "relu at sigma_w = 2 diverges: no curve"
    for g in groups:
        if g["qs"] is None:
            continue
        q = lf.map_q(g["qs"])
        close(g["y"], mf.c_map(g["act"], c, q, g["sw"], g["sb"]), f"C(c) {g['act']} {g['sw']} {g['sb']}")
        close([g["chi"], g["cs"]], [mf.chi_1(g["act"], g["sw"], g["sb"]), mf.c_star(g["act"], g["sw"], g["sb"])],
              "chi_1, c*")


def test_phase_diagram_holds_sigprops_grid(small):
    for g in lf.phase_diagram_data()["groups"]:
        pd = mf.phase_diagram(g["act"], lf.PHASE_SIGMA_W, lf.PHASE_SIGMA_B, correlations=True)
        for key, lib in (("q", pd.q_star), ("chi", pd.chi_1), ("cs", pd.c_star), ("xi", pd.xi_c)):
            close(g[key], lib, f"{key} {g['act']}")  # sigma_w-major, as the page unrolls it


def test_resnet_spectrum_and_weibull_hold_sigprops_values(small):
    for g in lf.resnet_spectrum_data()["groups"]:
        close([g["lo"], g["hi"]], resnet_theory.resnet_spectral_edges(g["a"]), f"edges a = {g['a']}")
        lam = torch.tensor(lf.edge_grid(g["lo"], g["hi"]), dtype=torch.float64)
        close(g["y"], resnet_theory.resnet_spectral_density(lam, g["a"]), f"rho a = {g['a']}")
    t = torch.tensor(lf.unit_grid(*lf.WEIBULL_T), dtype=torch.float64)
    x = torch.tensor(lf.unit_grid(*lf.PHI_X), dtype=torch.float64)
    for g in lf.weibull_data()["groups"]:
        close(g["w"], gp.weibull_pdf(t, g["th"]), "Weibull density")
        close(g["o"], gp.phi(x, g["th"], "odd"), "phi odd")
        close(g["p"], gp.phi(x, g["th"], "positive"), "phi positive")


def test_stored_numbers_keep_seven_significant_digits():
    assert lf._r(math.pi) == 3.141593 and lf._r(float("inf")) is None and lf._r(float("nan")) is None
    assert abs(lf._r(123456.789) - 123456.789) / 123456.789 < 5e-7


MARKS = {"length-map": {"curve", "fixed", "readout"}, "correlation-map": {"curve", "fixed", "readout"},
         "phase-diagram": {"cells", "eoc", "readout"}, "resnet-spectrum": {"curve", "edges", "readout"},
         "weibull": {"density", "phi"}}


def _names(node, out):
    if isinstance(node, dict):
        if isinstance(node.get("name"), str) and "mark" in node:
            out.add(node["name"])
        for v in node.values():
            _names(v, out)
    elif isinstance(node, list):
        for v in node:
            _names(v, out)
    return out


@pytest.mark.parametrize("name", list(lf.FIGURES))
def test_spec_is_valid_vega_lite_with_its_data_and_named_marks(small, name):
    import altair as alt

    spec = json.loads(lf.figure_spec(name))
    assert spec["datasets"]["groups"], name
    (alt.LayerChart if "layer" in spec else alt.VConcatChart).from_dict(spec)  # raises if invalid
    assert MARKS[name] <= _names(spec, set()), f"{name}: marks {_names(spec, set())}"
    # the page holds a placeholder naming the figure's file; the file holds the same
    # specification and data (columnar: keys once), and nothing of it is inline in the page
    filename, body = lf.figure_file(name)
    page = lf.figure_html(name, "x", "alt text")
    assert f'data-src="{lf.STATIC_SUBDIR}/{filename}"' in page and "datasets" not in page
    assert f"min-height:{lf.HEIGHTS[name]}px" in page
    payload = json.loads(body)
    assert set(payload["data"]) == {"groups"} and "datasets" not in payload["spec"]
    assert {**payload["spec"], "datasets": {"groups": lf.figure_rows(payload)}} == {
        **spec, "description": lf.FIGURES[name].alt}
    params = {p["name"] for p in spec["params"]}
    assert params, f"{name} has no slider"


def test_unknown_figure_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown live figure 'nope'; known: length-map"):
        lf.figure_data("nope")


def test_vendored_javascript_is_there_with_its_licences():
    for f in lf.JS_FILES:
        assert (lf.JS_DIR / f).stat().st_size > 1000, f
    for pkg in lf.JS_VERSIONS:
        assert (lf.JS_DIR / f"LICENSE.{pkg}.txt").exists(), pkg
    assert f'version="{lf.JS_VERSIONS["vega"]}"' in (lf.JS_DIR / "vega.min.js").read_text(encoding="utf8")
    assert sum((lf.JS_DIR / f).stat().st_size for f in lf.JS_FILES) < 900_000


def test_data_is_cached_across_builds_until_sigprop_changes(small, monkeypatch, tmp_path):
    monkeypatch.setattr(lf, "CACHE_DIR", tmp_path)
    first = lf.figure_data("weibull")
    assert [p.name.split("-")[0] for p in tmp_path.iterdir()] == ["weibull"]
    lf.figure_data.cache_clear()

    def recompute():
        raise AssertionError("recomputed although nothing changed")

    monkeypatch.setitem(lf.FIGURES, "weibull", lf.FIGURES["weibull"].__class__(
        recompute, lf.weibull_spec, "", ""))
    assert lf.figure_data("weibull") == first
    lf.figure_data.cache_clear()
    monkeypatch.setattr(lf, "_source_key", lambda: "changed")
    with pytest.raises(AssertionError, match="recomputed"):
        lf.figure_data("weibull")
