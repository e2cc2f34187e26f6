"""The book's figure style and a few recurring figures.

Call :func:`use_style` once at the top of a chapter; every figure then shares
the seaborn theme, font sizes readable at the website's width, and a
colour-blind-safe palette.  Helpers return the matplotlib objects they draw on,
so a chapter can add to them.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

__all__ = ["use_style", "PALETTE", "figure", "identity_line", "mark_fixed_points", "theory_vs_simulation", "heatmap"]

#: Colour-blind-safe palette used throughout the book.
PALETTE = sns.color_palette("colorblind")


def use_style(context: str = "notebook", font_scale: float = 1.0) -> None:
    """Apply the book's style: seaborn ``whitegrid`` theme, colour-blind palette,
    SVG-free deterministic PNG output at 110 dpi, constrained layout.

    Raises
    ------
    ValueError
        If ``context`` is not a seaborn context name.
    """
    if context not in ("paper", "notebook", "talk", "poster"):
        raise ValueError(f"context must be one of paper, notebook, talk, poster; got {context!r}")
    sns.set_theme(context=context, style="whitegrid", palette=PALETTE, font_scale=font_scale)
    matplotlib.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 110,
            "figure.constrained_layout.use": True,
            "axes.titlesize": "medium",
            "axes.titleweight": "bold",
            "legend.frameon": False,
            "image.cmap": "viridis",
            "svg.hashsalt": "sigprop",  # deterministic SVG ids if anyone saves SVG
        }
    )


def figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.3, **kw):
    """``plt.subplots`` with panel sizes that read well at the website's width.

    Raises
    ------
    ValueError
        If ``ncols`` or ``nrows`` is < 1.
    """
    if ncols < 1 or nrows < 1:
        raise ValueError("ncols and nrows must be >= 1")
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)


def identity_line(ax, lo: float, hi: float, **kw) -> None:
    """Draw the diagonal y = x on ``ax`` (for maps and their fixed points)."""
    style = dict(color="0.4", lw=1, ls="--", label="identity")
    style.update(kw)
    ax.plot([lo, hi], [lo, hi], **style)


def mark_fixed_points(ax, points: Iterable[float], stable: Optional[Sequence[bool]] = None, color=None, **kw) -> None:
    """Mark fixed points on the diagonal: filled for stable, hollow for unstable."""
    pts = list(points)
    flags = [True] * len(pts) if stable is None else list(stable)
    for p, s in zip(pts, flags):
        ax.plot(
            [p], [p], marker="o", ms=7, color=color or "k", markerfacecolor=(color or "k") if s else "white", zorder=5, **kw
        )


def theory_vs_simulation(ax, x_theory, y_theory, x_sim, y_sim, yerr=None, color=None, label: str = "") -> None:
    """The book's standard overlay: a theory line and simulation dots (with error bars).

    Labels read ``"<label> theory"`` and ``"<label> simulation"``.
    """
    ax.plot(x_theory, y_theory, color=color, lw=1.8, label=f"{label} theory".strip())
    ax.errorbar(
        x_sim, y_sim, yerr=yerr, fmt="o", ms=4, color=color, mfc="white", mew=1.2, capsize=2, label=f"{label} simulation".strip()
    )


def heatmap(ax, z, x, y, *, cbar_label: str = "", log: bool = False, contour_level: Optional[float] = None, **kw):
    """Heatmap of ``z[i, j]`` over ``x[i]`` (horizontal) and ``y[j]`` (vertical) with an
    optional contour (e.g. chi_1 = 1) drawn in white.  Returns the image."""
    z = np.asarray(z, dtype=float)
    norm = matplotlib.colors.LogNorm() if log else None
    im = ax.pcolormesh(np.asarray(x), np.asarray(y), z.T, shading="auto", norm=norm, rasterized=True, **kw)
    cb = ax.figure.colorbar(im, ax=ax)
    cb.set_label(cbar_label)
    if contour_level is not None:
        ax.contour(np.asarray(x), np.asarray(y), z.T, levels=[contour_level], colors="white", linewidths=1.5)
    return im
