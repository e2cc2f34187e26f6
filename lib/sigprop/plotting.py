r"""The book's figure style and a few recurring figures.

Every figure of the book goes through this module, so that all chapters share one
look.  The conventions (see also CONTRIBUTING.md, "How a chapter page looks"):

* **Style.** Call :func:`use_style` once at the top of a chapter: seaborn's
  ``whitegrid`` theme, an opaque white figure and PNG background (readable in the
  website's dark mode), mathtext for every label (write ``r"$\sigma_w = 1.5$"``,
  never ``"sigma_w = 1.5"``), fonts sized for the rendered width and PNGs kept small
  (:data:`DPI` dots per inch).
* **Panels.** :func:`figure` makes at most two panels per row (a 1 x 4 figure is a
  2 x 2 figure), each :data:`PANEL_WIDTH` x :data:`PANEL_HEIGHT` inches by default, so
  that a panel renders at least ~300 px wide at the website's desktop width (the
  content column is about :data:`CONTENT_WIDTH_PX` px at a 1400 px window) and its tick
  labels at >= 10 px on screen.
* **Series.** More than four series in one panel: take colour, line style *and*
  marker from :func:`series_styles` (Okabe-Ito colours, distinguishable for
  colour-blind readers and in greyscale).
* **Legends.** One legend per figure, below the panels and outside the data:
  :func:`legend_below`.  Never a legend over a curve.
* **Theory and simulation.** Theory is a line, simulation is markers (with error
  bars): :func:`theory_vs_simulation`.

Helpers return the matplotlib objects they draw on, so a chapter can add to them.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from ._checks import check_int, check_real, real_array

__all__ = [
    "use_style",
    "PALETTE",
    "OKABE_ITO",
    "DPI",
    "PANEL_WIDTH",
    "PANEL_HEIGHT",
    "CONTENT_WIDTH_PX",
    "MAX_COLS",
    "figure",
    "series_styles",
    "legend_below",
    "identity_line",
    "mark_fixed_points",
    "theory_vs_simulation",
    "heatmap",
]

#: Colour-blind-safe palette used throughout the book (seaborn's ``colorblind``).
PALETTE = sns.color_palette("colorblind")

#: The Okabe-Ito palette (Okabe and Ito, 2008), ordered so that neighbours also differ
#: in lightness (black first: it survives greyscale printing best).
OKABE_ITO = (
    "#000000",  # black
    "#E69F00",  # orange
    "#0072B2",  # blue
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow (last: weak on white)
)
_LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1.5, 1, 1.5, 1, 1.5)), (0, (8, 2)), (0, (1, 3)))
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

#: Resolution of the PNGs (dots per inch): a 2-panel figure is ~880 px wide, about
#: the content column at a 1400 px window, so the browser scales it little.
DPI = 100
#: Default size of one panel, in inches.
PANEL_WIDTH = 4.4
PANEL_HEIGHT = 3.2
#: Smallest panel width accepted by :func:`figure`, in inches (300 px at :data:`DPI`).
MIN_PANEL_WIDTH = 3.0
#: Width of a figure in the website's content column at a 1400 px window (measured), px.
CONTENT_WIDTH_PX = 768
#: Most panels per row.
MAX_COLS = 2


def _check_axes(ax, name: str = "ax"):
    if not isinstance(ax, matplotlib.axes.Axes):
        raise ValueError(f"{name} must be a matplotlib Axes (e.g. from sigprop.plotting.figure); got {ax!r} "
                         f"({type(ax).__name__})")
    return ax


def _points(values, name: str, *, finite: bool = True) -> np.ndarray:
    """A 1-D sequence of real numbers (finite unless ``finite=False``: nan leaves a gap in a line)."""
    arr = real_array(values, name, finite=False).cpu().numpy()
    if arr.ndim > 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got {values!r}")
    return np.atleast_1d(arr)


def use_style(context: str = "notebook", font_scale: float = 1.0) -> None:
    """Apply the book's style.

    Seaborn ``whitegrid`` theme with the colour-blind palette, opaque white figure and
    saved-figure background (the website has a dark mode; a transparent PNG would show
    black axes on black), mathtext with Computer-Modern-like maths, font sizes readable
    at the website's width (tick labels 10 pt, axis labels 11 pt), constrained layout,
    PNGs at :data:`DPI` dots per inch.

    Raises
    ------
    ValueError
        If ``context`` is not a seaborn context name.
    """
    if context not in ("paper", "notebook", "talk", "poster"):
        raise ValueError(
            f"context must be one of 'paper', 'notebook', 'talk', 'poster'; got {context!r}"
        )
    font_scale = check_real(font_scale, "font_scale", 0.0, lo_open=True)
    sns.set_theme(context=context, style="whitegrid", palette=PALETTE, font_scale=font_scale)
    scale = font_scale * {"paper": 0.8, "notebook": 1.0, "talk": 1.25, "poster": 1.6}[context]
    matplotlib.rcParams.update(
        {
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
            "figure.figsize": (PANEL_WIDTH, PANEL_HEIGHT),
            "figure.facecolor": "white",
            "figure.edgecolor": "white",
            "savefig.facecolor": "white",
            "savefig.edgecolor": "white",
            "savefig.transparent": False,
            "axes.facecolor": "white",
            "figure.constrained_layout.use": True,
            "font.size": 11 * scale,
            "axes.labelsize": 11 * scale,
            "axes.titlesize": 11 * scale,
            "axes.titleweight": "bold",
            "xtick.labelsize": 10 * scale,
            "ytick.labelsize": 10 * scale,
            "legend.fontsize": 10 * scale,
            "legend.title_fontsize": 10 * scale,
            "figure.titlesize": 12 * scale,
            "legend.frameon": False,
            "lines.linewidth": 1.8,
            "lines.markersize": 5,
            "mathtext.fontset": "cm",
            "axes.formatter.use_mathtext": True,
            "axes.unicode_minus": True,
            "image.cmap": "viridis",
            "svg.hashsalt": "sigprop",  # deterministic SVG ids if anyone saves SVG
        }
    )


def figure(
    ncols: int = 1,
    nrows: int = 1,
    width: Optional[float] = None,
    height: Optional[float] = None,
    **kw,
):
    """``plt.subplots(nrows, ncols)`` with panels that read well on the website.

    Parameters
    ----------
    ncols, nrows
        Panels per row (1 or 2) and rows.  Four panels are ``figure(2, 2)``, three are
        ``figure(2, 2)`` with the fourth axis removed, or ``figure(1, 3)``.
    width, height
        Size of one panel in inches (default :data:`PANEL_WIDTH` x :data:`PANEL_HEIGHT`);
        ``width`` at least :data:`MIN_PANEL_WIDTH`.
    **kw
        Passed to :func:`matplotlib.pyplot.subplots` (``sharex``, ``sharey``, ...).

    Returns
    -------
    fig, axes
        The figure and a 2-d array of axes (``axes[row, col]``).

    Raises
    ------
    ValueError
        If ``ncols`` is not 1 or 2, ``nrows`` < 1, or ``width``/``height`` is too small.
    """
    if isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)) or not 1 <= ncols <= MAX_COLS:
        rows = -(-int(ncols) // MAX_COLS) * nrows if isinstance(ncols, (int, np.integer)) and ncols > 0 else 2
        raise ValueError(
            f"ncols must be 1 or {MAX_COLS} (at most {MAX_COLS} panels per row, so that each "
            f"panel is readable on the website); got ncols={ncols!r}. Put the panels in more "
            f"rows instead: figure(ncols={MAX_COLS}, nrows={rows})"
        )
    if not isinstance(nrows, (int, np.integer)) or nrows < 1:
        raise ValueError(f"nrows must be an integer >= 1; got nrows={nrows!r}")
    width = PANEL_WIDTH if width is None else check_real(width, "width")
    height = PANEL_HEIGHT if height is None else check_real(height, "height")
    if width < MIN_PANEL_WIDTH:
        raise ValueError(
            f"width must be >= {MIN_PANEL_WIDTH} inches per panel (~300 px on the website); "
            f"got width={width}"
        )
    if height <= 0:
        raise ValueError(f"height must be > 0 inches per panel; got height={height}")
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)


def series_styles(n: int) -> list[dict]:
    """``n`` distinct styles for ``n`` series in one panel: ``ax.plot(x, y, **style)``.

    Each style is a dict with ``color`` (Okabe-Ito, colour-blind safe), ``linestyle``
    and ``marker``; the first seven differ in all three, so seven series stay apart in
    greyscale too.  With many points per line, pass ``markevery=`` so the markers do not
    crowd the line.  Beyond eight series, colours repeat with a new line style/marker.

    Raises
    ------
    ValueError
        If ``n`` is not an integer >= 0.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an integer >= 0 (the number of series); got n={n!r}")
    if n > 10_000:  # a figure shows tens of series; millions of styles are a mistake (and memory)
        raise ValueError(f"n must be at most 10,000 series (a figure legible at the site's width shows a few); got n={n!r}")
    styles = []
    for i in range(int(n)):
        styles.append(
            {
                "color": OKABE_ITO[i % len(OKABE_ITO)],
                "linestyle": _LINESTYLES[i % len(_LINESTYLES)],
                "marker": _MARKERS[i % len(_MARKERS)],
            }
        )
    return styles


def legend_below(fig, axes=None, ncol: Optional[int] = None, **kw):
    """One legend for the whole figure, centred below the panels (outside the data).

    Collects the labelled handles of ``axes`` (default: every axis of ``fig``), once
    per label, removes the axes' own legends, and places a figure legend under the
    panels; constrained layout makes room for it.

    Parameters
    ----------
    fig
        The figure.
    axes
        An axis, a sequence or array of axes; default ``fig.axes``.
    ncol
        Columns of the legend; default: up to 4 entries a row.
    **kw
        Passed to :meth:`matplotlib.figure.Figure.legend` (``title``, ``fontsize``, ...).

    Returns
    -------
    matplotlib.legend.Legend or None
        The legend, or None when no artist carries a label.
    """
    if not isinstance(fig, matplotlib.figure.Figure):
        raise ValueError(f"fig must be a matplotlib Figure; got {fig!r} ({type(fig).__name__})")
    if ncol is not None:
        check_int(ncol, "ncol", 1)
    if axes is None:
        axes = fig.axes
    axes = list(np.ravel(np.asarray(axes, dtype=object))) if not hasattr(axes, "get_legend_handles_labels") else [axes]
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab and not lab.startswith("_") and lab not in labels:
                handles.append(h)
                labels.append(lab)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if not handles:
        return None
    if ncol is None:
        ncol = min(len(labels), 4)
    if ncol < 1:
        raise ValueError(f"ncol must be >= 1; got ncol={ncol}")
    options = {"loc": "outside lower center", "ncol": ncol, "frameon": False}
    options.update(kw)
    if not fig.get_layout_engine() and options["loc"].startswith("outside"):
        fig.set_layout_engine("constrained")
    return fig.legend(handles, labels, **options)


def identity_line(ax, lo: float, hi: float, **kw) -> None:
    """Draw the diagonal y = x on ``ax`` (for maps and their fixed points)."""
    _check_axes(ax)
    lo, hi = check_real(lo, "lo"), check_real(hi, "hi")
    if not lo < hi:
        raise ValueError(f"lo must be < hi; got lo={lo!r}, hi={hi!r}")
    style = dict(color="0.4", lw=1, ls="--", label="identity")
    style.update(kw)
    ax.plot([lo, hi], [lo, hi], **style)


def mark_fixed_points(ax, points: Iterable[float], stable: Optional[Sequence[bool]] = None, color=None, **kw) -> None:
    """Mark fixed points on the diagonal: filled for stable, hollow for unstable."""
    _check_axes(ax)
    pts = list(_points(points, "points"))
    flags = [True] * len(pts) if stable is None else list(stable)
    if len(flags) != len(pts):
        raise ValueError(f"stable must have one flag per point ({len(pts)}); got {len(flags)}")
    for p, s in zip(pts, flags):
        ax.plot(
            [p], [p], marker="o", ms=7, color=color or "k", markerfacecolor=(color or "k") if s else "white", zorder=5, **kw
        )


def theory_vs_simulation(
    ax,
    x_theory,
    y_theory,
    x_sim,
    y_sim,
    yerr=None,
    color=None,
    label: str = "",
    linestyle="-",
    marker: str = "o",
) -> None:
    """The book's standard overlay: theory as a line, simulation as markers (with error bars).

    Labels read ``"<label> theory"`` and ``"<label> simulation"``.  For several series
    in one panel, pass ``color``, ``linestyle`` and ``marker`` from :func:`series_styles`.
    """
    _check_axes(ax)
    x_theory, y_theory = _points(x_theory, "x_theory", finite=False), _points(y_theory, "y_theory", finite=False)
    x_sim, y_sim = _points(x_sim, "x_sim", finite=False), _points(y_sim, "y_sim", finite=False)
    if x_theory.shape != y_theory.shape:
        raise ValueError(f"x_theory and y_theory must have one length; got {x_theory.shape} and {y_theory.shape}")
    if x_sim.shape != y_sim.shape:
        raise ValueError(f"x_sim and y_sim must have one length; got {x_sim.shape} and {y_sim.shape}")
    if yerr is not None:
        err = real_array(yerr, "yerr", finite=False)
        if bool((err < 0).any()):
            raise ValueError(f"yerr must be >= 0 (an error bar's half-length); got {yerr!r}")
    ax.plot(x_theory, y_theory, color=color, lw=1.8, linestyle=linestyle, label=f"{label} theory".strip())
    ax.errorbar(
        x_sim,
        y_sim,
        yerr=yerr,
        fmt=marker,
        linestyle="none",
        ms=5,
        color=color,
        mfc="white",
        mew=1.2,
        capsize=2,
        label=f"{label} simulation".strip(),
    )


def heatmap(ax, z, x, y, *, cbar_label: str = "", log: bool = False, contour_level: Optional[float] = None, **kw):
    """Heatmap of ``z[i, j]`` over ``x[i]`` (horizontal) and ``y[j]`` (vertical) with an
    optional contour (e.g. :math:`\\chi_1 = 1`) drawn in white; a nan in ``z`` is a cell
    without a value (e.g. a fixed point never reached), drawn blank.  Returns the image."""
    _check_axes(ax)
    try:
        arr = np.asarray(z.detach().cpu() if hasattr(z, "detach") else z)
    except (TypeError, ValueError):  # not an array: real_array says why
        arr = None
    holes = np.isnan(arr) if arr is not None and arr.dtype.kind == "f" else None
    if holes is not None and holes.any():
        z = real_array(np.where(holes, 0.0, arr), "z", finite=False).cpu().numpy()
        z[holes] = np.nan
    else:
        z = real_array(z, "z", finite=False).cpu().numpy()
    x, y = _points(x, "x"), _points(y, "y")
    if z.shape != (x.size, y.size):
        raise ValueError(f"z must have shape (len(x), len(y)) = ({x.size}, {y.size}); got {z.shape}")
    if contour_level is not None:
        contour_level = check_real(contour_level, "contour_level")
    norm = matplotlib.colors.LogNorm() if log else None
    im = ax.pcolormesh(np.asarray(x), np.asarray(y), z.T, shading="auto", norm=norm, rasterized=True, **kw)
    cb = ax.figure.colorbar(im, ax=ax)
    cb.set_label(cbar_label)
    if contour_level is not None:
        ax.contour(np.asarray(x), np.asarray(y), z.T, levels=[contour_level], colors="white", linewidths=1.5)
    return im
