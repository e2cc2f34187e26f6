r"""Interactive explorers of mean-field theory: the length and correlation maps, and the phase diagram.

Two explorers, each a figure with controls for :math:`\sigma_w`, :math:`\sigma_b` and the activation:

* :func:`map_explorer` -- the length map :math:`q^{l+1} = \mathcal V(q^l)` and the correlation map
  :math:`c^{l+1} = \mathcal C(c^l)` at :math:`q^*` (Poole et al. 2016, Figs. 1-2), with their fixed
  points :math:`q^*`, :math:`c^*` and the slope :math:`\chi_1 = \mathcal C'(1)`;
* :func:`phase_explorer` -- :math:`\chi_1` over the :math:`(\sigma_w, \sigma_b)` plane with the edge
  of chaos :math:`\chi_1 = 1` (Schoenholz et al. 2017, Fig. 1), a point that the sliders move, its
  :math:`q^*` and depth scale :math:`\xi_c`, and the correlation of two inputs layer by layer.

In Jupyter, JupyterLab and Colab the explorer is an ipywidgets ``interactive``: moving a slider
redraws the figure (about half a second). Everywhere else -- the website, ``nbclient``, nbval, a
notebook viewer -- the same output shows a static image drawn once at the initial values, because
the output carries both the widget view and that image, and a renderer without widgets picks the
image. Creating an explorer never waits for a frontend, so headless execution cannot hang.

The figures are :class:`matplotlib.figure.Figure` objects built without pyplot (no global state,
nothing shown twice); :func:`map_figure` and :func:`phase_figure` return them for use outside the
explorers. Fixed points use :mod:`sigprop.meanfield`; where the length diverges the explorer stops
at :math:`q = 10^3` (see :func:`mean_field_point`).
"""
from __future__ import annotations

import base64
import functools
import io
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import matplotlib
import numpy as np
import torch
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ._checks import check_budget, check_int, check_nonneg
from ._deprecation import renamed_kwarg, warn_renamed
from . import activations as _acts
from . import meanfield as mf
from . import runtime
from .gaussian import expect
from . import plotting
from .plotting import PALETTE

__all__ = ["ACTIVATIONS", "Q_CAP", "MeanFieldPoint", "mean_field_point", "map_figure", "phase_figure",
           "Explorer", "map_explorer", "phase_explorer"]

#: The activations the explorers offer (any registered name is accepted).
ACTIVATIONS = ("tanh", "erf", "sigmoid", "relu", "leaky_relu", "gelu", "swish")
#: Lengths beyond this count as divergent in the explorers (the quadrature gets costly past it).
Q_CAP = 1e3

_SIGMA_W_RANGE = (0.05, 4.0)
_SIGMA_B_RANGE = (0.0, 1.5)
_F64 = torch.float64


def _check_params(act: str, sigma_w: float, sigma_b: float) -> None:
    _acts.get(act)  # raises ValueError for an unknown name
    check_nonneg(sigma_w, "sigma_w")
    check_nonneg(sigma_b, "sigma_b")


def _diverges(act, sw: torch.Tensor, sb: torch.Tensor, q_cap: float = Q_CAP) -> torch.Tensor:
    """Whether iterating the length map from q = 1 passes ``q_cap``: the map stays above the
    diagonal on a log grid of [1, q_cap]. Cheap (one table of E phi^2 for every point)."""
    a = _acts.get(act)
    qs = torch.logspace(0, math.log10(q_cap), 48, dtype=_F64, device=sw.device)
    e2 = expect(lambda u: a.fn(u) ** 2, qs, breakpoints=a.breakpoints, tail_from=a.tail_from)
    g = sw.reshape(-1, 1) ** 2 * e2 + sb.reshape(-1, 1) ** 2 - qs
    return (g > 0).all(dim=-1).reshape(sw.shape)


@dataclass(frozen=True)
class MeanFieldPoint:
    r"""Mean-field quantities of the activation ``act`` at one :math:`(\sigma_w, \sigma_b)`: the fixed point ``q_star``
    (``inf`` when the length diverges), ``chi_1``, ``c_star``, the depth scale ``xi_c`` (``inf``
    on the edge of chaos) and the ``phase``: ``"ordered"``, ``"chaotic"``, ``"edge of chaos"``
    (:math:`|\chi_1 - 1| < 10^{-3}`) or ``"divergent"``."""

    act: str
    sigma_w: float
    sigma_b: float
    q_star: float
    chi_1: float
    c_star: float
    xi_c: float
    phase: str

    @property
    def activation(self) -> str:
        """Deprecated name of :attr:`act` (removed in the next release)."""
        warn_renamed("MeanFieldPoint.activation", "MeanFieldPoint.act")
        return self.act


@renamed_kwarg("activation", "act", "mean_field_point")
def mean_field_point(act: str, sigma_w: float, sigma_b: float) -> MeanFieldPoint:
    r"""The fixed points, :math:`\chi_1` and :math:`\xi_c` at one point (what the explorers print).

    :math:`q^*` is taken as infinite when the length map, iterated from :math:`q^0 = 1`, passes
    :data:`Q_CAP` (the map stays above the diagonal up to there); :func:`sigprop.meanfield.q_star`
    would follow it to :math:`10^8`, which is slow for unbounded activations.

    Raises
    ------
    ValueError
        For an unknown activation or a negative or non-finite sigma.
    """
    _check_params(act, sigma_w, sigma_b)
    return _mean_field_point(str(act), float(sigma_w), float(sigma_b))


@functools.lru_cache(maxsize=64)
def _mean_field_point(act: str, sigma_w: float, sigma_b: float) -> MeanFieldPoint:
    sw = torch.tensor([float(sigma_w)], dtype=_F64)
    sb = torch.tensor([float(sigma_b)], dtype=_F64)
    if bool(_diverges(act, sw, sb)[0]):
        nan = float("nan")
        return MeanFieldPoint(act, float(sigma_w), float(sigma_b), math.inf, nan, nan, nan, "divergent")
    q = float(mf.q_star(act, float(sigma_w), float(sigma_b)))
    if not math.isfinite(q):
        nan = float("nan")
        return MeanFieldPoint(act, float(sigma_w), float(sigma_b), math.inf, nan, nan, nan, "divergent")
    chi = float(mf.chi_1(act, float(sigma_w), float(sigma_b)))
    cs = float(mf.c_star(act, float(sigma_w), float(sigma_b)))
    # xi_c = -1 / log chi_c with chi_c = C'(c*) at q* (meanfield.xi_c would solve for c* again)
    chi_c = chi if cs >= 1.0 else float(mf.c_map_slope(act, cs, max(q, 1e-10), float(sigma_w), float(sigma_b)))
    xi = math.inf if chi_c == 1.0 else (abs(-1.0 / math.log(chi_c)) if chi_c > 0 else float("nan"))
    phase = "edge of chaos" if abs(chi - 1) < 1e-3 else ("chaotic" if chi > 1 else "ordered")
    return MeanFieldPoint(act, float(sigma_w), float(sigma_b), q, chi, cs, xi, phase)


def _fmt(x: float, digits: int = 3) -> str:
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf"
    return f"{x:.{digits}g}"


def _new_figure(ncols: int, width: float = plotting.PANEL_WIDTH, height: float = 4.3) -> Tuple[Figure, Sequence[Any]]:
    runtime.enable_inline_figures()  # so that a notebook shows a returned figure
    fig = Figure(figsize=(width * ncols, height), layout="constrained", dpi=plotting.DPI)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _book_style(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw in the book's style (:func:`sigprop.plotting.use_style`) without changing the
    caller's matplotlib settings: the style holds inside an ``rc_context`` only, and the
    ticks (which matplotlib creates lazily, from the settings of the moment) are created
    inside it, so that the figure keeps the style when it is shown or saved later."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs) -> Figure:
        with matplotlib.rc_context():
            plotting.use_style()
            fig = draw(*args, **kwargs)
            for ax in fig.axes:
                for axis in (ax.xaxis, ax.yaxis):
                    axis.get_major_ticks()
                    axis.get_minor_ticks()
        return fig

    return wrapper


_CURVE_CACHE: Dict[Tuple[str, float, float], Tuple[np.ndarray, np.ndarray]] = {}


def _c_map_curve(act: str, point: MeanFieldPoint, nodes: int = 33) -> Tuple[np.ndarray, np.ndarray]:
    """C(c) at q* on a fine grid of [-1, 1]: exact at ``nodes`` Chebyshev-spaced points (the
    bivariate integrals are the costly part), a monotone cubic (PCHIP) in between."""
    key = (act, point.sigma_w, point.sigma_b)
    if key not in _CURVE_CACHE:
        from scipy.interpolate import PchipInterpolator

        k = np.arange(nodes)
        knots = np.sort(-np.cos(np.pi * k / (nodes - 1)))
        qv = max(point.q_star, 1e-10)  # q* = 0 (ordered, no bias): the small-q limit of the map
        vals = mf.c_map(act, torch.as_tensor(knots, dtype=_F64), qv, point.sigma_w, point.sigma_b).numpy()
        fine = np.linspace(-1.0, 1.0, 401)
        _CURVE_CACHE.clear()  # one entry: the explorers redraw the same point for both panels
        _CURVE_CACHE[key] = (fine, PchipInterpolator(knots, vals)(fine))
    return _CURVE_CACHE[key]


@_book_style
@renamed_kwarg("activation", "act", "map_figure")
def map_figure(act: str = "tanh", sigma_w: float = 1.5, sigma_b: float = 0.3) -> Figure:
    r"""The length map and the correlation map side by side, with their fixed points.

    Left: :math:`\mathcal V(q)` against the diagonal, a cobweb of the iteration from a large
    :math:`q^0`, and :math:`q^*`. Right: :math:`\mathcal C(c)` at :math:`q = q^*`, its stable
    fixed point :math:`c^*`, and the tangent at :math:`c = 1`, whose slope is :math:`\chi_1`
    (steeper than the diagonal: the chaotic phase, :math:`c^* < 1`).

    Raises
    ------
    ValueError
        For an unknown activation or a negative or non-finite sigma.
    """
    point = mean_field_point(act, sigma_w, sigma_b)
    fig, (axq, axc) = _new_figure(2)
    q_star = point.q_star
    q_hi = 10.0 if not math.isfinite(q_star) else max(2.5 * q_star, 2.0)
    q = torch.linspace(0.0, q_hi, 81, dtype=_F64)
    v = mf.q_map(act, q, sigma_w, sigma_b).numpy()
    axq.plot(q.numpy(), v, color=PALETTE[0], lw=2, label=r"$\mathcal{V}(q)$")
    axq.plot([0, q_hi], [0, q_hi], color="0.4", lw=1, ls="--", label="diagonal")
    # cobweb from q0 = 0.95 q_hi: the iteration q -> V(q), read off the curve
    path = [0.95 * q_hi]
    for _ in range(8):
        path.append(float(np.interp(path[-1], q.numpy(), v)) if path[-1] <= q_hi else path[-1])
    xs, ys = [path[0]], [path[0]]
    for a, b in zip(path[:-1], path[1:]):
        xs += [a, b]
        ys += [b, b]
    axq.plot(xs, ys, color=PALETTE[2], lw=0.9, alpha=0.8, label="iteration")
    if math.isfinite(q_star):
        axq.plot([q_star], [q_star], "o", color=PALETTE[3], ms=7, zorder=5, label=f"$q^*$ = {_fmt(q_star)}")
        axq.set_title(f"length map: $q^*$ = {_fmt(q_star)}")
    else:
        axq.set_title(r"length map: $q^l$ diverges ($q^* = \infty$)")
    axq.set_xlim(0, q_hi)
    axq.set_ylim(0, max(q_hi, float(np.nanmax(v)) * 1.02))
    axq.set_xlabel("$q^l$")
    axq.set_ylabel("$q^{l+1}$")

    axc.plot([-1, 1], [-1, 1], color="0.4", lw=1, ls="--", label="diagonal")
    if math.isfinite(q_star):
        c, cm = _c_map_curve(act, point)
        axc.plot(c, cm, color=PALETTE[1], lw=2, label=r"$\mathcal{C}(c)$ at $q^*$")
        tangent = 1 + point.chi_1 * (c - 1)
        axc.plot(c, tangent, color=PALETTE[4], lw=1, ls=":", label=fr"slope $\chi_1$ = {_fmt(point.chi_1)}")
        axc.plot([point.c_star], [point.c_star], "o", color=PALETTE[3], ms=7, zorder=5,
                 label=f"$c^*$ = {_fmt(point.c_star)}")
        axc.set_title(fr"correlation map: $\chi_1$ = {_fmt(point.chi_1)}, $\xi_c$ = {_fmt(point.xi_c)}")
    else:
        axc.text(0, 0, "no fixed length:\nthe correlation map\nis not defined", ha="center", va="center")
        axc.set_title("correlation map")
    axc.set_xlim(-1, 1)
    axc.set_ylim(-1, 1.02)
    axc.set_xlabel("$c^l$")
    axc.set_ylabel("$c^{l+1}$")
    plotting.legend_below(fig, [axq, axc], ncol=4)
    fig.suptitle(fr"{act}: $\sigma_w$ = {sigma_w:.2f}, $\sigma_b$ = {sigma_b:.2f} ({point.phase})")
    return fig


_PHASE_CACHE: Dict[Tuple[str, Tuple[float, float], Tuple[float, float], int], Tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _chi_grid(act: str, sw_range, sb_range, resolution: int):
    """chi_1 on the grid (NaN where the length diverges), cached per activation and grid.

    A picture, computed cheaply: E phi^2 and E phi'^2 are tabulated once on 400 values of
    log q in [1e-8, Q_CAP], and q* is found by iterating the interpolated length map from
    q = 1 at every grid point at once (within about 1e-4 of :func:`sigprop.meanfield.phase_diagram`,
    which solves every point exactly and is slower). The marked point is always exact."""
    key = (act, tuple(map(float, sw_range)), tuple(map(float, sb_range)), int(resolution))
    if key not in _PHASE_CACHE:
        a = _acts.get(act)
        lq = np.linspace(math.log(1e-8), math.log(Q_CAP), 400)
        qt = torch.as_tensor(np.exp(lq), dtype=_F64)
        le2 = np.log(np.maximum(expect(lambda u: a.fn(u) ** 2, qt, breakpoints=a.breakpoints, tail_from=a.tail_from).numpy(), 1e-300))
        ed2 = expect(lambda u: a.deriv(u) ** 2, qt, breakpoints=a.breakpoints, tail_from=a.tail_from).numpy()
        sw = np.linspace(*map(float, sw_range), resolution)
        sb = np.linspace(*map(float, sb_range), resolution)
        w2, b2 = np.meshgrid(sw**2, sb**2, indexing="ij")
        q = np.ones_like(w2)
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf where the length diverged
            q = _iterate_length(q, w2, b2, lq, le2)
        chi = w2 * np.interp(np.log(np.clip(q, 1e-8, Q_CAP)), lq, ed2)
        chi[~np.isfinite(q) | (q >= Q_CAP)] = np.nan
        _PHASE_CACHE[key] = (sw, sb, chi)
    return _PHASE_CACHE[key]


def _iterate_length(q, w2, b2, lq, le2):
    """Iterate q -> w2 E phi^2(q) + b2 (E phi^2 interpolated in log-log) until it settles."""
    for _ in range(400):
        new = w2 * np.exp(np.interp(np.log(np.clip(q, 1e-8, Q_CAP)), lq, le2)) + b2
        new = np.where(q >= Q_CAP, np.inf, new)
        done = np.abs(new - q) <= 1e-12 * (1 + q)
        q = new
        if done.all():
            break
    return q


def _correlation_trajectory(act: str, point: MeanFieldPoint, depth: int,
                            c0: Sequence[float] = (0.2, 0.6, 0.95)) -> Optional[np.ndarray]:
    """c^l for inputs of length q* and initial correlations c0, by iterating the correlation map
    read off a fine table of C at q* (an interpolation: cheap enough for a slider)."""
    if not math.isfinite(point.q_star):
        return None
    grid, table = _c_map_curve(act, point)
    traj = [np.asarray(c0, dtype=float)]
    for _ in range(depth):
        traj.append(np.clip(np.interp(traj[-1], grid, table), -1.0, 1.0))
    return np.stack(traj)


@_book_style
@renamed_kwarg("activation", "act", "phase_figure")
def phase_figure(act: str = "tanh", sigma_w: float = 1.5, sigma_b: float = 0.3, *,
                 sigma_w_range: Tuple[float, float] = _SIGMA_W_RANGE,
                 sigma_b_range: Tuple[float, float] = _SIGMA_B_RANGE,
                 resolution: int = 100, depth: int = 40) -> Figure:
    r"""The order-to-chaos phase diagram with one point marked, and that point's correlations.

    Left: :math:`\log_{10}\chi_1` over the :math:`(\sigma_w, \sigma_b)` grid (blue: ordered,
    red: chaotic, grey: the length diverges), the edge of chaos :math:`\chi_1 = 1` in black,
    and the point with its :math:`q^*`, :math:`\chi_1` and depth scale :math:`\xi_c`. Right:
    the correlation :math:`c^l` of pairs of inputs (of length :math:`q^*`) over ``depth``
    layers, converging to :math:`c^*` on the scale :math:`\xi_c`; the dotted line is at
    :math:`6\xi_c`, the depth up to which Schoenholz et al. (2017) find networks trainable.
    The grid is computed once per activation and range (cached).

    Raises
    ------
    ValueError
        For an unknown activation, a negative or non-finite sigma, a range that is not
        increasing and non-negative, ``resolution < 8`` or ``depth < 1``.
    """
    _check_params(act, sigma_w, sigma_b)
    for name, rng in (("sigma_w_range", sigma_w_range), ("sigma_b_range", sigma_b_range)):
        if len(rng) != 2 or not (0 <= rng[0] < rng[1]) or not math.isfinite(rng[1]):
            raise ValueError(f"{name} must be (low, high) with 0 <= low < high; got {rng!r}")
    resolution = check_int(resolution, "resolution", 8)
    check_budget(f"phase_figure(resolution={resolution})", seconds=resolution**2 * 2e-4,
                 nbytes=resolution**2 * 8 * 60.0)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1; got {depth!r}")
    sw, sb, chi = _chi_grid(act, sigma_w_range, sigma_b_range, resolution)
    point = mean_field_point(act, sigma_w, sigma_b)
    fig, (ax, axc) = _new_figure(2)
    with np.errstate(divide="ignore", invalid="ignore"):
        logchi = np.log10(chi)
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.8")
    im = ax.pcolormesh(sw, sb, np.ma.masked_invalid(logchi).T, shading="auto", cmap=cmap,
                       norm=Normalize(-1, 1), rasterized=True)
    fig.colorbar(im, ax=ax, label=r"$\log_{10}\chi_1$")
    if np.isfinite(logchi).any() and np.nanmin(logchi) < 0 < np.nanmax(logchi):
        ax.contour(sw, sb, np.ma.masked_invalid(logchi).T, levels=[0.0], colors="black", linewidths=1.5)
    ax.plot([], [], color="black", lw=1.5, label=r"edge of chaos $\chi_1 = 1$")
    ax.plot([sigma_w], [sigma_b], marker="*", ms=15, color="gold", mec="black", ls="none",
            label=fr"$q^*$ = {_fmt(point.q_star)}, $\xi_c$ = {_fmt(point.xi_c)}")
    ax.set_xlim(sw[0], sw[-1])
    ax.set_ylim(sb[0], sb[-1])
    ax.set_xlabel(r"$\sigma_w$")
    ax.set_ylabel(r"$\sigma_b$")
    ax.set_title(fr"$\chi_1$ = {_fmt(point.chi_1)} ({point.phase})")

    traj = _correlation_trajectory(act, point, depth)
    if traj is None:
        axc.text(0.5, 0.5, "the length diverges:\nno correlation map", ha="center", va="center",
                 transform=axc.transAxes)
    else:
        layers = np.arange(traj.shape[0])
        for k in range(traj.shape[1]):
            axc.plot(layers, traj[:, k], color=PALETTE[k], lw=1.8, label=f"$c^0$ = {traj[0, k]:.2f}")
        axc.axhline(point.c_star, color="0.3", lw=1, ls="--", label=f"$c^*$ = {_fmt(point.c_star)}")
        if math.isfinite(point.xi_c) and 6 * point.xi_c < depth:
            axc.axvline(6 * point.xi_c, color="0.3", lw=1, ls=":", label=r"$6\,\xi_c$")
        axc.set_xlim(0, depth)
    axc.set_ylim(min(-0.05, float(np.nanmin(traj)) - 0.05) if traj is not None else -0.05, 1.05)
    axc.set_xlabel("layer $l$")
    axc.set_ylabel("$c^l$")
    axc.set_title(fr"correlations: $\xi_c$ = {_fmt(point.xi_c)} layers")
    plotting.legend_below(fig, [ax, axc], ncol=4)
    fig.suptitle(fr"{act}: $\sigma_w$ = {sigma_w:.2f}, $\sigma_b$ = {sigma_b:.2f}")
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


class Explorer:
    """A figure with controls: an ipywidgets ``interactive`` in a live notebook, a static
    image elsewhere (see the module's docstring).

    Attributes
    ----------
    figure : matplotlib.figure.Figure
        The figure at the current values.
    params : dict
        The current ``act`` (the activation's name), ``sigma_w`` and ``sigma_b``.
    widget : ipywidgets.interactive or None
        The controls, tied to the drawing function; ``None`` when ipywidgets is not
        installed or ``widgets=False``.
    image : ipywidgets.Image or None
        The figure, as a PNG that every redraw replaces.
    view : ipywidgets.VBox or None
        What a live notebook shows: the controls above the image.
    controls : dict
        The control widgets by parameter name (empty without ipywidgets).
    seconds : float
        How long the last drawing took.
    """

    def __init__(self, draw: Callable[..., Figure], params: Dict[str, Any], widgets: bool = True,
                 activations: Sequence[str] = ACTIVATIONS):
        self._draw = draw
        self.params = dict(params)
        self.seconds = 0.0
        self.figure = self._render(**self.params)
        self._static_figure = self.figure
        self._static_png = _png(self.figure)
        self.widget = None
        self.image = None
        self.view = None
        self.controls: Dict[str, Any] = {}
        if widgets:
            self._attach_widgets(activations)

    def _render(self, **params) -> Figure:
        start = time.perf_counter()
        fig = self._draw(**params)
        self.seconds = time.perf_counter() - start
        return fig

    def update(self, **params) -> Figure:
        """Redraw with new values (any of ``act``, ``sigma_w``, ``sigma_b``); returns the figure.

        Raises
        ------
        ValueError
            For an unknown parameter name or a bad value.
        """
        if "activation" in params and "act" in self.params:
            warn_renamed("Explorer.update(activation=...)", "Explorer.update(act=...)")
            params["act"] = params.pop("activation")
        unknown = set(params) - set(self.params)
        if unknown:
            raise ValueError(f"params must be among {sorted(self.params)}; got {sorted(unknown)}")
        new = {**self.params, **params}
        if new != self.params or self.figure is None:
            self.figure = self._render(**new)
            self.params = new
        return self.figure

    def _attach_widgets(self, activations: Sequence[str]) -> None:
        try:
            import ipywidgets as w
        except ImportError:  # the static figure is all we can show
            return

        acts = list(dict.fromkeys([self.params["act"], *activations]))
        style = {"description_width": "60px"}
        layout = w.Layout(width="420px")
        self.controls = {
            "act": w.Dropdown(options=acts, value=self.params["act"], description="activation",
                                     style=style),
            # a slider clamps a value outside its range: widen the range to hold the value asked for
            "sigma_w": w.FloatSlider(value=self.params["sigma_w"], min=min(_SIGMA_W_RANGE[0], self.params["sigma_w"]),
                                     max=max(_SIGMA_W_RANGE[1], self.params["sigma_w"]),
                                     step=0.01, description="σ_w", continuous_update=False, readout_format=".2f",
                                     style=style, layout=layout),
            "sigma_b": w.FloatSlider(value=self.params["sigma_b"], min=min(_SIGMA_B_RANGE[0], self.params["sigma_b"]),
                                     max=max(_SIGMA_B_RANGE[1], self.params["sigma_b"]),
                                     step=0.01, description="σ_b", continuous_update=False, readout_format=".2f",
                                     style=style, layout=layout),
        }

        self.image = w.Image(value=self._static_png, format="png")

        def show(act: str, sigma_w: float, sigma_b: float) -> None:
            # The figure is an Image widget whose value the sliders replace, not output printed
            # into the interactive's Output widget: nothing is displayed from a widget callback,
            # so a headless client (nbclient) never has to route widget output back to the kernel.
            fig = self.update(act=act, sigma_w=float(sigma_w), sigma_b=float(sigma_b))
            png = self._static_png if fig is self._static_figure else _png(fig)
            if self.image.value != png:
                self.image.value = png

        self.widget = w.interactive(show, {"manual": False}, clear_output=False, **self.controls)
        self.view = w.VBox([self.widget, self.image])

    # What a notebook shows: the widget view for live frontends, the static image for the rest.
    def _repr_mimebundle_(self, include=None, exclude=None):
        p = self.params
        text = (f"<{type(self).__name__}: {p['act']}, sigma_w={p['sigma_w']:.2f}, "
                f"sigma_b={p['sigma_b']:.2f}; run in Jupyter or Colab to move the sliders>")
        bundle = {"text/plain": text, "image/png": base64.b64encode(self._static_png).decode("ascii")}
        if self.view is not None and getattr(self.view, "model_id", None):
            bundle["application/vnd.jupyter.widget-view+json"] = {
                "version_major": 2, "version_minor": 0, "model_id": self.view.model_id}
        return bundle

    def __repr__(self) -> str:
        return self._repr_mimebundle_()["text/plain"]


@renamed_kwarg("activation", "act", "map_explorer")
def map_explorer(act: str = "tanh", sigma_w: float = 1.5, sigma_b: float = 0.3, *,
                 widgets: bool = True) -> Explorer:
    r"""The length and correlation maps (:func:`map_figure`) with sliders for :math:`\sigma_w`,
    :math:`\sigma_b` and a menu of activations; display it as a cell's last expression.

    Raises
    ------
    ValueError
        For an unknown activation or a negative or non-finite sigma.
    """
    _check_params(act, sigma_w, sigma_b)
    return Explorer(map_figure, {"act": act, "sigma_w": float(sigma_w), "sigma_b": float(sigma_b)},
                    widgets=widgets)


@renamed_kwarg("activation", "act", "phase_explorer")
def phase_explorer(act: str = "tanh", sigma_w: float = 1.5, sigma_b: float = 0.3, *,
                   widgets: bool = True, resolution: int = 100) -> Explorer:
    r"""The phase diagram (:func:`phase_figure`) with a point that sliders for :math:`\sigma_w`
    and :math:`\sigma_b` move, and a menu of activations. The grid of :math:`\chi_1` is computed
    once per activation; moving the point only recomputes that point.

    Raises
    ------
    ValueError
        For an unknown activation, a negative or non-finite sigma, or ``resolution < 8``.
    """
    _check_params(act, sigma_w, sigma_b)

    def draw(act: str, sigma_w: float, sigma_b: float) -> Figure:
        return phase_figure(act, sigma_w, sigma_b, resolution=resolution)

    return Explorer(draw, {"act": act, "sigma_w": float(sigma_w), "sigma_b": float(sigma_b)},
                    widgets=widgets)
