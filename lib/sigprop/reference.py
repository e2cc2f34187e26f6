"""The papers' headline numbers beside the book's measurements.

Each chapter has one table, ``book/reference/<chapter>.yaml``: for every number of its
paper that the chapter measures, the paper's value and where it stands in the paper, the
book's value with its standard error at each scale it was measured at (``small``, the
preset the website runs; ``medium``, the larger runs of ``make reference``), the
tolerance within which the two are expected to agree, and a note where a row is not
comparable. ``tools/reference.py`` measures the book's side with :func:`measure`;
``tests/test_reference.py`` holds the stored values to their tolerances, and each chapter
checks with :func:`stale` that the values stored for the scale it runs at are still the ones
it measures.

>>> from sigprop import reference
>>> reference.table("ch05")            # doctest: +SKIP
>>> reference.html("ch05")             # doctest: +SKIP
>>> reference.show("ch05")             # in a notebook cell   # doctest: +SKIP
>>> reference.stale("ch05", globals()) # at the end of the chapter   # doctest: +SKIP
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from ._checks import check_real

__all__ = ["find", "load", "table", "html", "show", "format_value", "measure", "stale"]

_CHAPTER = re.compile(r"^ch\d\d$")
_SCALES = ("small", "medium", "paper")


def find(chapter: str, root: Optional[Union[str, Path]] = None) -> Path:
    """The path of ``chapter``'s table, ``reference/<chapter>.yaml`` under ``root`` or
    ``book/reference/<chapter>.yaml`` under it (``root`` defaults to the working
    directory: a chapter's notebook runs in ``book/``).

    Raises
    ------
    ValueError
        If ``chapter`` is not of the form ``"ch05"``.
    FileNotFoundError
        If no table is found (the tables ship with the book's sources, not with the
        library).
    """
    if not isinstance(chapter, str) or not _CHAPTER.match(chapter):
        raise ValueError(f"chapter must be of the form 'ch05'; got {chapter!r}")
    base = Path(root) if root is not None else Path.cwd()
    for candidate in (base / "reference" / f"{chapter}.yaml",
                      base / "book" / "reference" / f"{chapter}.yaml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no table for chapter {chapter!r} under root {str(base)!r}: the tables are "
        "book/reference/chNN.yaml in the book's sources"
    )


def load(chapter: str, root: Optional[Union[str, Path]] = None) -> dict[str, Any]:
    """The table of ``chapter`` as stored (a dict with ``rows``); see :func:`find`."""
    import yaml

    data = yaml.safe_load(find(chapter, root).read_text(encoding="utf8"))
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ValueError(f"the table of chapter {chapter!r} has no list of rows")
    return data


def format_value(value: Optional[float], se: Optional[float] = None) -> str:
    """``1.1992`` or ``1.199 ± 0.010``: the standard error to two significant figures
    and the value to the same decimal place; ``(3.98 ± 0.70) × 10⁷`` for magnitudes of
    10⁵ and more or below 10⁻⁴; an en dash for a missing value."""
    if value is not None:
        value = check_real(value, "value", allow_inf=True) if not (isinstance(value, float) and math.isnan(value)) else value
    if se is not None and not (isinstance(se, float) and math.isnan(se)):
        se = check_real(se, "se", 0.0, allow_inf=True)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    exponent = int(math.floor(math.log10(abs(value)))) if math.isfinite(value) and value != 0 else 0
    if abs(exponent) >= 5:  # (3.98 ± 0.70) × 10⁷ rather than 39831100 ± 7023210
        scale = 10.0 ** exponent
        inner = format_value(value / scale, None if se is None else se / scale)
        power = str(exponent).translate(_SUPERSCRIPT)
        return f"({inner}) × 10{power}" if " ± " in inner else f"{inner} × 10{power}"
    if se is None or se == 0 or not math.isfinite(se):
        return f"{value:.6g}"
    decimals = max(0, 1 - int(math.floor(math.log10(abs(se)))))
    return f"{value:.{decimals}f} ± {se:.{decimals}f}"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _tolerance(tol: Optional[dict]) -> str:
    if not tol:
        return "–"
    parts = []
    if tol.get("abs"):
        parts.append(f"{tol['abs']:g}")
    if tol.get("rel"):
        parts.append(f"{100 * tol['rel']:g}%")
    if tol.get("se"):
        parts.append(f"{tol['se']:g} s.e.")
    return " + ".join(parts) if parts else "–"


def _note(row: dict, scales: list[str]) -> str:
    nc = row.get("not_comparable")
    notes = []
    if isinstance(nc, str):
        notes.append(nc)
    elif isinstance(nc, dict):
        notes.extend(f"{scale}: {nc[scale]}" for scale in scales if scale in nc)
    if row.get("note"):
        notes.append(str(row["note"]))
    return "; ".join(notes)


def table(chapter: str, root: Optional[Union[str, Path]] = None):
    """The table of ``chapter`` as a :class:`pandas.DataFrame`, one row per number:
    quantity (mathtext), the paper's value and where it stands, the book's value ± its
    standard error at each scale measured, with the sizes used, the tolerance, and the
    note that says why a row is not comparable."""
    import pandas as pd

    data = load(chapter, root)
    rows = data["rows"]
    scales = [s for s in _SCALES if any((r.get("book") or {}).get(s) for r in rows)]
    records = []
    for row in rows:
        paper = row.get("paper") or {}
        record = {
            "quantity": row.get("quantity", row["id"]),
            "paper": format_value(paper.get("value")),
            "where in the paper": paper.get("where", ""),
        }
        for scale in scales:
            entry = (row.get("book") or {}).get(scale) or {}
            record[f"book, {scale}"] = format_value(entry.get("value"), entry.get("se"))
            record[f"sizes, {scale}"] = entry.get("size", "")
        record["tolerance"] = _tolerance(row.get("tolerance"))
        record["note"] = _note(row, scales)
        records.append(record)
    return pd.DataFrame.from_records(records, index=[r["id"] for r in rows])


_PAD = "padding: 0.25em 0.9em 0.25em 0"  # a gap between columns, none at the table's left edge
_WIDE = {"quantity": "; min-width: 9em", "paper": "; min-width: 8em", "note": "; min-width: 12em"}  # text columns stay readable on a phone
_INLINE_MATH = re.compile(r"\$([^$]+)\$")


def _cell(main: str, detail: str = "") -> str:
    from html import escape

    text = f'<span style="white-space: nowrap">{escape(main)}</span>' if " ± " in main else escape(main)
    if detail:
        text += f'<br><span style="font-size: 0.85em; opacity: 0.75">{escape(detail)}</span>'
    return f'<td style="{_PAD}; vertical-align: top; text-align: left">{text}</td>'


def html(chapter: str, root: Optional[Union[str, Path]] = None) -> str:
    """The table of ``chapter`` as a compact HTML ``<table>`` for a notebook cell,
    ``IPython.display.HTML(reference.html("ch05"))``: per row the quantity, the paper's
    value with where it stands, the book's value ± standard error at each scale with its
    sizes, the tolerance and the note. Inline mathematics ``$...$`` becomes
    ``\\(...\\)`` inside a ``mathjax_process`` block, which MathJax typesets on the
    website and in Jupyter."""
    frame = table(chapter, root)
    scales = [c.split(", ", 1)[1] for c in frame.columns if c.startswith("book, ")]
    with_notes = bool(frame["note"].str.len().sum())
    head = ["quantity", "paper"] + [f"book, {s}" for s in scales] + ["tolerance"]
    head += ["note"] if with_notes else []
    lines = ['<div class="mathjax_process" style="overflow-x: auto">',
             '<table class="sigprop-reference" style="font-size: 0.85em">',
             "<thead><tr>" + "".join(f'<th style="{_PAD}; text-align: left{_WIDE.get(h, "")}">{h}</th>' for h in head)
             + "</tr></thead>", "<tbody>"]
    for _, row in frame.iterrows():
        cells = [_cell(row["quantity"]), _cell(row["paper"], row["where in the paper"])]
        cells += [_cell(row[f"book, {s}"], row[f"sizes, {s}"]) for s in scales]
        cells.append(_cell(row["tolerance"]))
        if with_notes:
            cells.append(_cell(row["note"]))
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines += ["</tbody>", "</table>", "</div>"]
    return _INLINE_MATH.sub(r"\\(\1\\)", "\n".join(lines))


def show(chapter: str, root: Optional[Union[str, Path]] = None):
    """:func:`html` as a displayable object for a chapter's cell. Where the book's sources
    are not at hand (a notebook opened alone, e.g. in Colab), one sentence says where the
    table is instead of raising.

    Raises
    ------
    ValueError
        If ``chapter`` is not of the form ``"ch05"``.
    """
    from IPython.display import HTML

    try:
        return HTML(html(chapter, root))
    except FileNotFoundError:
        return HTML(
            f"<p>The table of this chapter is stored with the book's sources "
            f"(<code>book/reference/{chapter}.yaml</code>) and shown on the book's website.</p>"
        )


def _snippet_namespace(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """``namespace`` plus the names every ``measure`` snippet may use."""
    import numpy as np
    import torch

    import sigprop
    from sigprop import (activations, gaussian, gaussian_preact, meanfield, moment_theory, resnet_theory,
                         spectra, stats)

    ns = dict(namespace)
    ns.update(np=np, torch=torch, sigprop=sigprop, activations=activations, gaussian=gaussian,
              gaussian_preact=gaussian_preact, mf=meanfield, meanfield=meanfield,
              moment_theory=moment_theory, resnet_theory=resnet_theory,
              resnet_meanfield=resnet_theory,  # the module's name before issue 18
              spectra=spectra, stats=stats)
    return ns


def _check_namespace(namespace) -> None:
    if not isinstance(namespace, Mapping):
        raise TypeError(f"namespace must be a mapping of names to values (e.g. globals()); got "
                        f"{type(namespace).__name__}")


def _rounded(x) -> Optional[float]:
    return None if x is None else float(f"{float(x):.6g}")


def measure(chapter: str, namespace: Mapping[str, Any],
            root: Optional[Union[str, Path]] = None) -> dict[str, dict[str, Any]]:
    """The book's side of ``chapter``'s table, measured from a chapter's variables.

    Every row of the table carries a ``measure`` snippet: Python that reads the chapter's
    variables and sets ``value``, ``se`` (its standard error, ``None`` for a number without
    sampling error) and optionally ``size`` (the sizes it was measured at, in words). Each
    snippet runs in its own shallow copy of ``namespace`` (a chapter's ``globals()``, or the
    variables ``tools/reference.py`` stored from a run) with ``np``, ``torch`` and the
    ``sigprop`` modules added, so the caller's names are not rebound.

    Returns ``{row id: {"value", "se"[, "size"]}}`` with values rounded to six
    significant figures, as the tables store them.

    Raises
    ------
    ValueError
        If ``chapter`` is not of the form ``"ch05"``, or a snippet sets no ``value``.
    TypeError
        If ``namespace`` is not a mapping.
    """
    _check_namespace(namespace)
    base = _snippet_namespace(namespace)
    results = {}
    for row in load(chapter, root)["rows"]:
        code = row.get("measure")
        if not code:
            continue
        ns = dict(base, ROW_ID=row["id"])
        exec(compile(code, f"<{chapter}:{row['id']}>", "exec"), ns)
        if "value" not in ns:
            raise ValueError(f"the measure snippet of {chapter}:{row['id']} sets no value")
        entry = {"value": _rounded(ns["value"]), "se": _rounded(ns.get("se"))}
        if ns.get("size"):
            entry["size"] = str(ns["size"])
        results[row["id"]] = entry
    return results


def stale(chapter: str, namespace: Mapping[str, Any], scale: Optional[str] = None,
          root: Optional[Union[str, Path]] = None, rel: float = 1e-3) -> list[str]:
    """The rows of ``chapter``'s table whose stored value at ``scale`` is no longer what the
    chapter measures: one sentence per row, an empty list when the table is current.

    Measures every row with :func:`measure` and compares it with the stored value at
    ``scale`` (default: the preset the chapter runs at, :func:`sigprop.runtime.scale`);
    they agree when ``|measured - stored| <= rel * |stored|`` (stored values have six
    significant figures; ``rel`` absorbs the rounding differences of another machine's
    arithmetic). Rows with no stored value at ``scale`` are skipped, and so is a chapter
    whose table is not at hand (a notebook opened alone). A chapter ends with
    ``assert not reference.stale("ch05", globals())``, so that nbval fails when a change of
    the library or of the chapter moves a number without ``tools/reference.py`` storing it.

    Raises
    ------
    ValueError
        If ``chapter`` is malformed, ``scale`` is not a preset, or ``rel`` is negative.
    """
    from . import runtime

    _check_namespace(namespace)
    rel = check_real(rel, "rel", 0.0)
    scale = runtime.scale(scale)
    try:
        rows = load(chapter, root)["rows"]
    except FileNotFoundError:
        return []
    stored = {row["id"]: (row.get("book") or {}).get(scale) for row in rows}
    if not any(entry and entry.get("value") is not None for entry in stored.values()):
        return []
    found = []
    for row_id, entry in measure(chapter, namespace, root).items():
        old = stored.get(row_id)
        if not old or old.get("value") is None:
            continue
        new = entry["value"]
        if new is None or not math.isclose(new, old["value"], rel_tol=rel, abs_tol=1e-12):
            found.append(f"{chapter}:{row_id} at scale {scale}: stored {old['value']}, measured now {new}")
    return found
