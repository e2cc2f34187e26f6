r"""Live figures: figures a reader moves on the static website, without a kernel.

A Sphinx extension (``sphinx.local_extensions`` in _config.yml) with one directive::

    ```{live-figure} length-map
    :name: fig-ch02-live-length-map
    Optional caption; the figure's own caption is used when this is empty.
    ```

At build time the directive computes the figure's data with ``sigprop`` at *every* slider
position (nothing is interpolated: the browser only selects, it never computes a plotted
value) and writes it with a Vega-Lite specification (made with Altair) into a file of its own,
``_static/live-figures/<name>-<hash>.json`` (``figure_file``; the data as columns, keys once),
never inline in the page. The page holds a placeholder of the figure's size and the small
loader live-figures.js; when the figure comes within half a screen of the viewport
(IntersectionObserver; a "Load figure" button where that is missing) the loader fetches Vega,
Vega-Lite and vega-embed (vendored in tools/live_figures_js and served with the site, never
from a CDN) and the figure's file, draws it and binds the sliders: a first visit to a page
loads none of it unless a figure is near the first screen. The figure is a
numbered, captioned figure like the book's others; ``{numref}`` reaches it by its name.

Figures (``FIGURES``): ``length-map``, ``correlation-map``, ``phase-diagram``,
``resnet-spectrum``, ``weibull``. ``figure_data(name)`` is the data generator
(tests/test_live_figures.py checks it against the library; tests/test_site.py reads the
plotted values back from the page). Numbers are stored to ``DIGITS`` significant digits
(relative error below 5e-7).

Why Vega-Lite and not Plotly: Plotly's smallest bundle with heatmaps
(``plotly.js-cartesian-dist-min`` 4.1.1) measured 1.50 MB (0.50 MB gzip), more than one figure's
budget of 1 MB on its own; Vega, Vega-Lite and vega-embed together are 0.83 MB (0.28 MB gzip,
BSD-3-Clause), and Vega-Lite binds sliders to parameters natively.
"""
from __future__ import annotations

import functools
import html
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

JS_DIR = Path(__file__).resolve().with_name("live_figures_js")
#: Served with the site from _static, in this order (vega-embed needs the other two).
JS_FILES = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js", "live-figures.js")
#: The one script a page with a live figure loads; it loads the other three (JS_FILES order)
#: when a figure comes near the viewport.
JS_LOADER = "live-figures.js"
#: The vendored JavaScript (npm packages, BSD-3-Clause; see tools/live_figures_js/README.md).
JS_VERSIONS = {"vega": "6.4.0", "vega-lite": "6.4.3", "vega-embed": "7.3.0"}
DIGITS = 7

ACTIVATIONS = ("tanh", "relu", "erf", "gelu")


def _grid(start: float, step: float, n: int) -> List[float]:
    return [round(start + k * step, 10) for k in range(n)]


MAP_SIGMA_W = _grid(0.25, 0.25, 16)  # 0.25 ... 4.0
MAP_SIGMA_B = _grid(0.0, 0.1, 11)  # 0 ... 1.0
MAP_POINTS = 25
PHASE_SIGMA_W = _grid(0.1, 0.1, 40)  # 0.1 ... 4.0
PHASE_SIGMA_B = _grid(0.0, 0.05, 21)  # 0 ... 1.0
RESNET_A = _grid(0.01, 0.01, 100)  # 0.01 ... 1.0
RESNET_POINTS = 81
THETAS = _grid(2.1, 0.1, 80)  # 2.1 ... 10.0
WEIBULL_T = (-3.0, 3.0, 61)
PHI_X = (-4.0, 4.0, 41)
#: the explorers' starting point (sigprop.explore)
START = {"act": "tanh", "sw": 1.5, "sb": 0.3}


def _r(x) -> Optional[float]:
    """One number as stored in the page: DIGITS significant digits, None when not finite."""
    x = float(x)
    return float(f"{x:.{DIGITS}g}") if math.isfinite(x) else None


def _rs(values) -> List[Optional[float]]:
    return [_r(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _torch():
    import torch

    return torch


def map_q(q_star: float) -> float:
    """The length at which the correlation-map figure draws C(c): q*, or 1e-10 where q* = 0
    (the small-q limit of the map, as sigprop.explore draws it)."""
    return max(q_star, 1e-10)


def length_grid(q_hi: float, n: int = MAP_POINTS) -> np.ndarray:
    """The q at which the length map is drawn: q_hi * k / (n - 1), as the page computes it."""
    return np.array([q_hi * k / (n - 1) for k in range(n)])


def unit_grid(lo: float, hi: float, n: int) -> np.ndarray:
    """lo + (hi - lo) * k / (n - 1), as the page computes it."""
    return np.array([lo + (hi - lo) * k / (n - 1) for k in range(n)])


def edge_grid(lo: float, hi: float, n: int = RESNET_POINTS) -> np.ndarray:
    """Points of [lo, hi] clustered at both edges (where a density falls like a square root),
    as the page computes them."""
    return np.array([lo + (hi - lo) * (1 - math.cos(math.pi * k / (n - 1))) / 2 for k in range(n)])


# ------------------------------------------------------------------------------ the data

def length_map_data() -> Dict:
    """q* and the length map V(q) on [0, q_hi] at every (activation, sigma_w, sigma_b)."""
    torch = _torch()
    from sigprop import meanfield as mf

    groups = []
    for act in ACTIVATIONS:
        sw = torch.tensor(MAP_SIGMA_W, dtype=torch.float64)[:, None].expand(-1, len(MAP_SIGMA_B))
        sb = torch.tensor(MAP_SIGMA_B, dtype=torch.float64)[None, :].expand(len(MAP_SIGMA_W), -1)
        qs = mf.q_star(act, sw, sb)
        for i, w in enumerate(MAP_SIGMA_W):
            for j, b in enumerate(MAP_SIGMA_B):
                q = float(qs[i, j])
                q_hi = float(f"{max(2.5 * q, 2.0):.4g}") if math.isfinite(q) else 10.0
                x = torch.tensor(length_grid(q_hi), dtype=torch.float64)
                groups.append({"act": act, "sw": w, "sb": b, "qs": _r(q), "qhi": q_hi,
                               "y": _rs(mf.q_map(act, x, w, b))})
    return {"groups": groups}


def correlation_map_data() -> Dict:
    """C(c) at q* on [-1, 1], c* and chi_1 at every (activation, sigma_w, sigma_b); no curve
    where the length diverges."""
    torch = _torch()
    from sigprop import meanfield as mf

    c = torch.tensor(unit_grid(-1.0, 1.0, MAP_POINTS), dtype=torch.float64)
    groups = []
    for act in ACTIVATIONS:
        sw = torch.tensor(MAP_SIGMA_W, dtype=torch.float64)[:, None].expand(-1, len(MAP_SIGMA_B))
        sb = torch.tensor(MAP_SIGMA_B, dtype=torch.float64)[None, :].expand(len(MAP_SIGMA_W), -1)
        qs = mf.q_star(act, sw, sb)
        fin = torch.isfinite(qs)
        chi = mf.chi_1(act, sw, sb)
        cs = mf.c_star(act, sw, sb)
        qv = torch.where(fin, qs.clamp(min=1e-10), torch.ones_like(qs))
        cm = mf.c_map(act, c, qv[..., None], sw[..., None], sb[..., None])
        for i, w in enumerate(MAP_SIGMA_W):
            for j, b in enumerate(MAP_SIGMA_B):
                ok = bool(fin[i, j])
                groups.append({"act": act, "sw": w, "sb": b, "qs": _r(qs[i, j]),
                               "chi": _r(chi[i, j]) if ok else None, "cs": _r(cs[i, j]) if ok else None,
                               "y": _rs(cm[i, j]) if ok else []})
    return {"groups": groups}


def phase_diagram_data() -> Dict:
    """sigprop.meanfield.phase_diagram (q*, chi_1, c*, xi_c) on the sigma_w x sigma_b grid and
    the edge of chaos, for each activation; grid values in sigma_w-major order."""
    torch = _torch()
    from sigprop import meanfield as mf

    groups = []
    for act in ACTIVATIONS:
        pd = mf.phase_diagram(act, PHASE_SIGMA_W, PHASE_SIGMA_B, correlations=True)
        eoc = mf.eoc_sigma_w(act, torch.tensor(PHASE_SIGMA_B, dtype=torch.float64), unstable="nan")
        groups.append({"act": act, "q": _rs(pd.q_star), "chi": _rs(pd.chi_1), "cs": _rs(pd.c_star),
                       "xi": _rs(pd.xi_c), "eoc": _rs(eoc)})
    return {"groups": groups}


def resnet_spectrum_data() -> Dict:
    """The universal density rho(lambda; a) of J J^T for residual networks and its edges."""
    torch = _torch()
    from sigprop import resnet_theory

    groups = []
    for a in RESNET_A:
        lo, hi = (_r(e) for e in resnet_theory.resnet_spectral_edges(a))
        lam = torch.tensor(edge_grid(lo, hi), dtype=torch.float64)
        groups.append({"a": a, "lo": lo, "hi": hi, "kappa": _r(resnet_theory.resnet_condition_number(a)),
                       "y": _rs(resnet_theory.resnet_spectral_density(lam, a))})
    return {"groups": groups}


def weibull_data() -> Dict:
    """The symmetric Weibull density W(theta, 1) and the two activations phi_theta (odd and
    positive) of the Wolinski-Arbel construction, at every theta."""
    torch = _torch()
    from sigprop import gaussian_preact as gp

    t = torch.tensor(unit_grid(*WEIBULL_T), dtype=torch.float64)
    x = torch.tensor(unit_grid(*PHI_X), dtype=torch.float64)
    groups = []
    for th in THETAS:
        groups.append({"th": th, "w": _rs(gp.weibull_pdf(t, th)), "o": _rs(gp.phi(x, th, "odd")),
                       "p": _rs(gp.phi(x, th, "positive"))})
    return {"groups": groups}


# ------------------------------------------------------------------------------ the specs

def _alt():
    import altair as alt

    return alt


def _slider(name: str, values: List[float], value: float, label: str):
    alt = _alt()
    step = round(values[1] - values[0], 10)
    return alt.param(name=name, value=value,
                     bind=alt.binding_range(min=values[0], max=values[-1], step=step, name=label))


def _select(name: str, options, value, label: str):
    alt = _alt()
    return alt.param(name=name, value=value, bind=alt.binding_select(options=list(options), name=label))


def _map_params():
    return [_select("act", ACTIVATIONS, START["act"], "activation "),
            _slider("sw", MAP_SIGMA_W, START["sw"], "σw "),
            _slider("sb", MAP_SIGMA_B, START["sb"], "σb ")]


_AT_MAP_POINT = "datum.act == act && abs(datum.sw - sw) < 1e-9 && abs(datum.sb - sb) < 1e-9"


def _fmt(field: str) -> str:
    return f"(isValid({field}) ? format({field}, '.4~g') : '∞')"


def length_map_spec() -> Dict:
    alt = _alt()
    base = alt.Chart().transform_filter(_AT_MAP_POINT)
    pts = (base.transform_flatten(["y"]).transform_window(i="row_number()")
           .transform_calculate(x=f"datum.qhi * (datum.i - 1) / {MAP_POINTS - 1}"))
    curve = pts.mark_line(color="#0072B2", strokeWidth=2.5, clip=True).encode(
        x=alt.X("x:Q", title="length qˡ of layer l"),
        y=alt.Y("y:Q", title="length qˡ⁺¹ of layer l + 1"),
        tooltip=[alt.Tooltip("x:Q", format=".4g", title="qˡ"), alt.Tooltip("y:Q", format=".4g", title="𝒱(qˡ)")],
    ).properties(name="curve")
    diagonal = pts.mark_line(color="#777777", strokeDash=[5, 4], strokeWidth=1).encode(x="x:Q", y="x:Q")
    fixed = base.transform_filter("isValid(datum.qs)").mark_point(
        filled=True, size=90, color="#D55E00", stroke="black").encode(x="qs:Q", y="qs:Q").properties(name="fixed")
    label = base.transform_calculate(
        text="isValid(datum.qs) ? 'fixed point q* = ' + format(datum.qs, '.4~g') : "
             "'qˡ diverges: no fixed point'").mark_text(
        align="left", baseline="top", fontSize=13, dx=6, dy=6).encode(
        x=alt.value(0), y=alt.value(0), text="text:N").properties(name="readout")
    chart = alt.layer(curve, diagonal, fixed, label, data=alt.Data(name="groups")).add_params(*_map_params())
    return chart.properties(width="container", height=280)


def correlation_map_spec() -> Dict:
    alt = _alt()
    base = alt.Chart().transform_filter(_AT_MAP_POINT)
    pts = (base.transform_flatten(["y"]).transform_window(i="row_number()")
           .transform_calculate(x=f"-1 + 2 * (datum.i - 1) / {MAP_POINTS - 1}"))
    xs = alt.Scale(domain=[-1, 1])
    ys = alt.Scale(domain=[-1, 1])
    curve = pts.mark_line(color="#009E73", strokeWidth=2.5).encode(
        x=alt.X("x:Q", title="correlation cˡ of layer l", scale=xs),
        y=alt.Y("y:Q", title="correlation cˡ⁺¹ of layer l + 1", scale=ys),
        tooltip=[alt.Tooltip("x:Q", format=".4g", title="cˡ"), alt.Tooltip("y:Q", format=".4g", title="𝒞(cˡ)")],
    ).properties(name="curve")
    diag = alt.Chart(alt.Data(values=[{"x": -1}, {"x": 1}])).mark_line(
        color="#777777", strokeDash=[5, 4], strokeWidth=1).encode(x=alt.X("x:Q", scale=xs), y=alt.Y("x:Q", scale=ys))
    tangent = base.transform_filter("isValid(datum.chi)").transform_calculate(
        c0="max(-1, 1 - 2 / max(datum.chi, 1e-9))").transform_calculate(
        y0="1 + datum.chi * (datum.c0 - 1)", one="1").mark_rule(
        color="#CC79A7", strokeDash=[2, 3], strokeWidth=1.5).encode(
        x=alt.X("c0:Q", scale=xs), y=alt.Y("y0:Q", scale=ys), x2="one", y2="one")
    fixed = base.transform_filter("isValid(datum.cs)").mark_point(
        filled=True, size=90, color="#D55E00", stroke="black").encode(
        x=alt.X("cs:Q", scale=xs), y=alt.Y("cs:Q", scale=ys)).properties(name="fixed")
    label = base.transform_calculate(
        text="isValid(datum.chi) ? ['c* = ' + format(datum.cs, '.4~g') + ',  χ₁ = ' + format(datum.chi, '.4~g'),"
             " datum.chi > 1.001 ? 'chaotic' : (datum.chi < 0.999 ? 'ordered' : 'edge of chaos')]"
             " : ['no fixed length: the map', 'is not defined']").mark_text(
        align="left", baseline="top", fontSize=13, dx=6, dy=6, lineBreak="\n").encode(
        x=alt.value(0), y=alt.value(0), text="text:N").properties(name="readout")
    chart = alt.layer(curve, diag, tangent, fixed, label, data=alt.Data(name="groups")).add_params(*_map_params())
    return chart.properties(width="container", height=280)


_PHASE_SHOW = {"log₁₀ χ₁": "log(datum.chi) / LN10", "log₁₀ q*": "log(datum.q) / LN10",
               "c*": "datum.cs", "log₁₀ ξc": "log(datum.xi) / LN10"}


def phase_diagram_spec() -> Dict:
    alt = _alt()
    nb, dsw, dsb = len(PHASE_SIGMA_B), PHASE_SIGMA_W[1] - PHASE_SIGMA_W[0], PHASE_SIGMA_B[1] - PHASE_SIGMA_B[0]
    z = " : ".join(f"show == '{k}' ? {v}" for k, v in _PHASE_SHOW.items()) + " : null"
    cells = (alt.Chart().transform_filter("datum.act == act").transform_flatten(["q", "chi", "cs", "xi"])
             .transform_window(i="row_number()")
             .transform_calculate(
                 sw=f"round(({PHASE_SIGMA_W[0]} + {dsw} * floor((datum.i - 1) / {nb})) * 1e6) / 1e6",
                 sb=f"round(({PHASE_SIGMA_B[0]} + {dsb} * ((datum.i - 1) % {nb})) * 1e6) / 1e6")
             .transform_calculate(z=z, w0=f"datum.sw - {dsw / 2}", w1=f"datum.sw + {dsw / 2}",
                                  b0=f"datum.sb - {dsb / 2}", b1=f"datum.sb + {dsb / 2}"))
    hover = alt.selection_point(name="hover", on="pointerover", fields=["sw", "sb"], clear=False,
                                value=[{"sw": 1.5, "sb": 0.3}])
    xs = alt.Scale(domain=[PHASE_SIGMA_W[0] - dsw / 2, PHASE_SIGMA_W[-1] + dsw / 2], nice=False, zero=False)
    ys = alt.Scale(domain=[PHASE_SIGMA_B[0] - dsb / 2, PHASE_SIGMA_B[-1] + dsb / 2], nice=False, zero=False)
    heat = cells.mark_rect().encode(
        x=alt.X("w0:Q", scale=xs, title="weight scale σw"), x2="w1",
        y=alt.Y("b0:Q", scale=ys, title="bias scale σb"), y2="b1",
        color=alt.Color("z:Q", scale=alt.Scale(scheme="viridis"), title=None,
                        legend=alt.Legend(orient="top", direction="horizontal", gradientLength=160)),
        stroke=alt.condition(hover, alt.value("white"), alt.value(None)),
    ).add_params(hover).properties(name="cells")
    eoc = (alt.Chart().transform_filter("datum.act == act").transform_flatten(["eoc"])
           .transform_window(j="row_number()")
           .transform_calculate(sb=f"round(({PHASE_SIGMA_B[0]} + {dsb} * (datum.j - 1)) * 1e6) / 1e6")
           .transform_filter("isValid(datum.eoc)")
           .mark_line(color="black", strokeWidth=2)
           .encode(x=alt.X("eoc:Q", scale=xs), y=alt.Y("sb:Q", scale=ys), order="j:Q").properties(name="eoc"))
    top = alt.layer(heat, eoc).properties(width=320, height=220)
    readout = cells.transform_filter(hover).transform_calculate(
        text="['σw = ' + format(datum.sw, '.2f') + ', σb = ' + format(datum.sb, '.2f') + ' (' + act + ')',"
             f" 'q* = ' + {_fmt('datum.q')} + ',  χ₁ = ' + (isValid(datum.chi) ? format(datum.chi, '.4~g') : '–'),"
             " 'c* = ' + (isValid(datum.cs) ? format(datum.cs, '.4~g') : '–') + ',  ξc = ' + "
             f"{_fmt('datum.xi')} + (isValid(datum.q) ? ' layers' : ''),"
             " isValid(datum.q) ? (datum.chi > 1.001 ? 'chaotic' : (datum.chi < 0.999 ? 'ordered' : 'edge of chaos'))"
             " : 'the length diverges']").mark_text(
        align="left", baseline="top", fontSize=13, lineBreak="\n").encode(
        x=alt.value(0), y=alt.value(0), text="text:N").properties(name="readout", width=320, height=70, view=alt.ViewBackground(stroke=None))
    chart = alt.vconcat(top, readout, data=alt.Data(name="groups"), spacing=8).add_params(
        _select("act", ACTIVATIONS, START["act"], "activation "),
        _select("show", list(_PHASE_SHOW), "log₁₀ χ₁", "colour "))
    spec = chart.to_dict()
    # Altair lifts the cursor's selection to every layer of the heatmap's view (and renames
    # the layers): it belongs to the cells alone, each selection once
    cells_layer, eoc_layer = spec["vconcat"][0]["layer"]
    cells_layer["name"], eoc_layer["name"] = "cells", "eoc"
    for param in spec["params"]:
        if param["name"] == "hover":
            param["views"] = ["cells"]
    # 840 cells redraw in a few ms on a canvas, in 100-300 ms as SVG elements
    spec["usermeta"] = {"renderer": "canvas"}
    return spec


def resnet_spectrum_spec() -> Dict:
    alt = _alt()
    base = alt.Chart().transform_filter("abs(datum.a - a) < 1e-9")
    pts = (base.transform_flatten(["y"]).transform_window(i="row_number()")
           .transform_calculate(x=f"datum.lo + (datum.hi - datum.lo) * (1 - cos(PI * (datum.i - 1) / "
                                  f"{RESNET_POINTS - 1})) / 2"))
    curve = pts.mark_line(color="#0072B2", strokeWidth=2.5).encode(
        x=alt.X("x:Q", title="λ (squared singular value of J)"),
        y=alt.Y("y:Q", title="density ρ(λ)"),
        tooltip=[alt.Tooltip("x:Q", format=".4g", title="λ"), alt.Tooltip("y:Q", format=".4g", title="ρ(λ)")],
    ).properties(name="curve")
    # the edges stop below the read-out, and an invisible point at 1.3 x the peak makes room for it
    edges = base.transform_fold(["lo", "hi"], as_=["edge", "lam"]).mark_rule(
        color="#D55E00", strokeDash=[4, 3], strokeWidth=1.5).encode(
        x="lam:Q", y=alt.value(40), y2=alt.value(280)).properties(name="edges")
    room = base.transform_calculate(top="extent(datum.y)[1] * 1.3").mark_point(opacity=0).encode(
        x="lo:Q", y="top:Q")
    label = base.transform_calculate(
        text="['edges λ₋ = ' + format(datum.lo, '.4~g') + ', λ₊ = ' + format(datum.hi, '.4~g'),"
             " 'condition number κ(J) = ' + format(datum.kappa, '.4~g')]").mark_text(
        align="right", baseline="top", fontSize=13, dx=-6, dy=6, lineBreak="\n").encode(
        x=alt.value("width"), y=alt.value(0), text="text:N").properties(name="readout")
    chart = alt.layer(curve, edges, room, label, data=alt.Data(name="groups")).add_params(
        _slider("a", RESNET_A, 0.25, "effective cumulant a "))
    return chart.properties(width="container", height=280)


def weibull_spec() -> Dict:
    alt = _alt()
    base = alt.Chart().transform_filter("abs(datum.th - theta) < 1e-9")
    t0, t1, nt = WEIBULL_T
    x0, x1, nx = PHI_X
    density = (base.transform_flatten(["w"]).transform_window(i="row_number()")
               .transform_calculate(t=f"{t0} + ({t1} - {t0}) * (datum.i - 1) / {nt - 1}")
               .mark_line(color="#0072B2", strokeWidth=2.5)
               .encode(x=alt.X("t:Q", title="weight t"), y=alt.Y("w:Q", title="density of W(θ, 1)"))
               .properties(name="density", width=320, height=180))
    legend = alt.Legend(orient="bottom-right", title=None)
    fams = {"o": "odd family", "p": "positive family"}
    phi = (base.transform_flatten(["o", "p"]).transform_window(i="row_number()")
           .transform_calculate(x=f"{x0} + ({x1} - {x0}) * (datum.i - 1) / {nx - 1}")
           .transform_fold(["o", "p"], as_=["family", "phi"])
           .transform_calculate(label=f"datum.family == 'o' ? '{fams['o']}' : '{fams['p']}'")
           .mark_line(strokeWidth=2.5)
           .encode(x=alt.X("x:Q", title="pre-activation x"), y=alt.Y("phi:Q", title="activation φθ(x)"),
                   color=alt.Color("label:N", scale=alt.Scale(range=["#D55E00", "#009E73"]), legend=legend),
                   strokeDash=alt.StrokeDash("label:N", scale=alt.Scale(range=[[1, 0], [6, 3]]), legend=legend),
                   detail="family:N")
           .properties(name="phi", width=320, height=200))
    chart = alt.vconcat(density, phi, data=alt.Data(name="groups"), spacing=12).add_params(
        _slider("theta", THETAS, 2.5, "θ ")).resolve_legend(color="independent", strokeDash="independent")
    return chart


@dataclass(frozen=True)
class LiveFigure:
    data: Callable[[], Dict]
    spec: Callable[[], object]
    caption: str
    alt: str


FIGURES: Dict[str, LiveFigure] = {
    "length-map": LiveFigure(
        length_map_data, length_map_spec,
        r"The length map $\mathcal V$ crosses the diagonal at the fixed point $q^*$ (dot) that every "
        r"input length approaches; move $\sigma_w$, $\sigma_b$ and the activation to move it. Solid: "
        r"$q^{l+1} = \mathcal V(q^l)$; dashed: the diagonal.",
        "The length map of one layer against the diagonal, with sliders for sigma_w, sigma_b and the activation."),
    "correlation-map": LiveFigure(
        correlation_map_data, correlation_map_spec,
        r"The correlation map $\mathcal C$ at $q^*$ always fixes $c = 1$; its slope there, $\chi_1$ "
        r"(dotted tangent), decides whether $c = 1$ attracts ($\chi_1 < 1$, ordered) or a second fixed "
        r"point $c^* < 1$ (dot) does ($\chi_1 > 1$, chaotic). Same sliders as the length map.",
        "The correlation map against the diagonal, its tangent at c = 1 and its stable fixed point."),
    "phase-diagram": LiveFigure(
        phase_diagram_data, phase_diagram_spec,
        r"The phase diagram over $(\sigma_w, \sigma_b)$: colour shows $\chi_1$, $q^*$, $c^*$ or the depth "
        r"scale $\xi_c$ (menu), the black curve is the edge of chaos $\chi_1 = 1$, and the numbers "
        r"below are those of the point under the cursor. Empty cells: the length diverges.",
        "A heatmap over sigma_w and sigma_b with the edge of chaos; hovering a cell shows its values."),
    "resnet-spectrum": LiveFigure(
        resnet_spectrum_data, resnet_spectrum_spec,
        r"The universal spectrum of $JJ^\top$ for a deep residual network depends on the effective "
        r"cumulant $a$ alone: it narrows to $\lambda = 1$ (isometry) as $a \to 0$. Dashed: the "
        r"closed-form edges $\lambda_\pm$.",
        "The density of squared singular values of the Jacobian with its two edges, with a slider for a."),
    "weibull": LiveFigure(
        weibull_data, weibull_spec,
        r"As $\theta$ falls towards 2 the symmetric Weibull weights leave 0 (top) and the matched "
        r"activations $\phi_\theta$ of both families bend to compensate (bottom); as $\theta$ grows the "
        r"odd one approaches the identity.",
        "Top, the symmetric Weibull density; bottom, the odd and positive activations; a slider for theta."),
}


#: Where the Sphinx extension keeps computed data between builds (_build/live-figures), keyed
#: by a hash of this file, every source file of sigprop and torch's version; None: no cache.
CACHE_DIR: Optional[Path] = None


def _source_key() -> str:
    import hashlib

    import sigprop

    h = hashlib.sha256(Path(__file__).read_bytes())
    for path in sorted(Path(sigprop.__file__).parent.rglob("*.py")):
        h.update(path.as_posix().encode() + path.read_bytes())
    h.update(_torch().__version__.encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def figure_data(name: str) -> Dict:
    """The data of one live figure, computed with sigprop (cached for the build, and across
    builds in CACHE_DIR while neither sigprop nor this file changes)."""
    if name not in FIGURES:
        raise ValueError(f"unknown live figure {name!r}; known: {', '.join(FIGURES)}")
    if CACHE_DIR is None:
        return FIGURES[name].data()
    path = CACHE_DIR / f"{name}-{_source_key()}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf8"))
    data = FIGURES[name].data()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for old in CACHE_DIR.glob(f"{name}-*.json"):
        old.unlink()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, allow_nan=False), encoding="utf8")
    tmp.replace(path)
    return data


@functools.lru_cache(maxsize=None)
def figure_spec(name: str) -> str:
    """The Vega-Lite specification of one live figure, its data included, as JSON."""
    spec = FIGURES[name].spec()
    spec = spec if isinstance(spec, dict) else spec.to_dict()
    spec["datasets"] = {"groups": figure_data(name)["groups"]}
    spec.setdefault("usermeta", {})["sigprop"] = name
    spec["usermeta"].setdefault("renderer", "svg")
    spec["autosize"] = {"type": "fit-x", "contains": "padding"} if spec.get("width") == "container" else {
        "type": "pad"}
    return json.dumps(spec, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _columnar(rows: List[Dict]) -> Dict:
    """Rows of objects as one list of keys and one list of values per row: the keys are not
    repeated (live-figures.js rebuilds the objects)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return {"keys": keys, "rows": [[row.get(k) for k in keys] for row in rows]}


@functools.lru_cache(maxsize=None)
def figure_file(name: str) -> Tuple[str, bytes]:
    """The file that carries one live figure's specification and data (served from
    _static/live-figures and fetched by the page when the figure comes near the viewport):
    its name (with a hash of its content, so a browser never keeps a stale one) and bytes.
    ``{"spec": <Vega-Lite without its data>, "data": {"groups": {"keys": [...], "rows": [...]}}}``."""
    import hashlib

    spec = json.loads(figure_spec(name))
    datasets = spec.pop("datasets")
    spec["description"] = FIGURES[name].alt
    payload = {"spec": spec, "data": {k: _columnar(v) for k, v in datasets.items()}}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf8")
    return f"{name}-{hashlib.sha256(body).hexdigest()[:10]}.json", body


def figure_rows(payload: Dict, dataset: str = "groups") -> List[Dict]:
    """The rows of a figure file's dataset as objects again (what live-figures.js does)."""
    cols = payload["data"][dataset]
    return [dict(zip(cols["keys"], row)) for row in cols["rows"]]


#: Where the figure files go, under the site's _static
STATIC_SUBDIR = "live-figures"
#: The placeholder's height (px) before the figure is drawn, about the drawn figure's, so that
#: the page does not jump when it appears
HEIGHTS = {"length-map": 400, "correlation-map": 400, "phase-diagram": 430, "resnet-spectrum": 360,
           "weibull": 560}


def figure_html(name: str, uid: str, alt: str) -> str:
    """The figure's place on the page: a placeholder of its size that live-figures.js fills
    (Vega and the figure's file are fetched only when it comes near the viewport)."""
    filename, _ = figure_file(name)
    return (f'<div class="sigprop-live" id="live-{uid}" data-live="{html.escape(name)}" '
            f'data-src="{STATIC_SUBDIR}/{html.escape(filename)}" '
            f'style="width:100%;max-width:640px;min-height:{HEIGHTS.get(name, 400)}px">'
            '<p class="sigprop-live-placeholder" style="box-sizing:border-box;margin:0;padding:1em;'
            f'min-height:{HEIGHTS.get(name, 400)}px;border:1px dashed #999;border-radius:4px;color:#555">'
            f'Live figure, drawn as it comes into view: {html.escape(alt)}</p>'
            '</div>\n'
            '<noscript>This figure moves with JavaScript, which is switched off.</noscript>\n')


# ------------------------------------------------------------------------------ Sphinx

def _directive():
    from docutils import nodes
    from docutils.parsers.rst import directives
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    class LiveFigureDirective(SphinxDirective):
        """``{live-figure} NAME``: a numbered figure moved by sliders (see the module docstring)."""

        required_arguments = 1
        has_content = True
        option_spec = {"name": directives.unchanged}

        def run(self):
            name = self.arguments[0].strip()
            if name not in FIGURES:
                raise self.error(f"unknown live figure {name!r}; known: {', '.join(FIGURES)}")
            fig = FIGURES[name]
            stem = self.env.docname.rsplit("/", 1)[-1].split("_")[0]
            uid = f"{name}-{self.env.new_serialno('sigprop-live-figure')}"
            figure = nodes.figure(classes=["sigprop-live-figure"])
            figure["live_name"] = name
            figure += nodes.raw("", figure_html(name, uid, fig.alt), format="html")
            text = list(self.content) if self.content else fig.caption.splitlines()
            parsed = nodes.Element()
            self.state.nested_parse(StringList(text, source=self.env.docname), self.content_offset, parsed)
            if parsed.children and isinstance(parsed[0], nodes.paragraph):
                first = parsed[0]
                figure += nodes.caption(first.rawsource, "", *first.children)
                if len(parsed) > 1:
                    figure += nodes.legend("", *parsed[1:])
            self.options["name"] = self.options.get("name") or f"fig-{stem}-live-{name}"
            self.add_name(figure)
            return [figure]

    return LiveFigureDirective


def _add_static_path(app, config):
    global CACHE_DIR
    if str(JS_DIR) not in config.html_static_path:
        config.html_static_path.append(str(JS_DIR))
    CACHE_DIR = Path(app.doctreedir).parent / "live-figures"


def _page_scripts(app, pagename, templatename, context, doctree):
    if doctree is None:
        return
    from docutils import nodes

    names = {n.get("live_name") for n in doctree.findall(nodes.figure) if "sigprop-live-figure" in n["classes"]}
    if not names:
        return
    # each figure's file beside the page's scripts (written once a build; the same file serves
    # a figure on every page that has it)
    folder = Path(app.outdir) / "_static" / STATIC_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(n for n in names if n):
        filename, body = figure_file(name)
        path = folder / filename
        if not path.exists() or path.read_bytes() != body:
            tmp = path.with_name(f"{filename}.{os.getpid()}.tmp")
            tmp.write_bytes(body)
            tmp.replace(path)
    # only the small loader, deferred: it fetches Vega (830 kB) and a figure's file when the
    # figure comes within a screen of the viewport, so a first visit does not load them
    app.add_js_file(JS_LOADER, priority=600, defer="defer")


def setup(app):
    app.add_directive("live-figure", _directive())
    app.connect("config-inited", _add_static_path)
    app.connect("html-page-context", _page_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
