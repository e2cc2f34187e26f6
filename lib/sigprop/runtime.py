"""Device choice, seeding and the scale preset.

The same chapter code runs at three scales:

* ``"small"`` (the default on a CPU): sizes chosen so that every chapter runs
  top to bottom in about a minute on two CPU cores;
* ``"medium"`` (never chosen automatically): the largest sizes a two-core CPU
  runs in a reasonable time (minutes to an hour a chapter), used by
  ``make reference`` to measure the numbers set beside the papers'. A chapter
  without a ``"medium"`` entry runs its ``"small"`` sizes (see :func:`pick`);
* ``"paper"`` (the default when a CUDA GPU is visible): the sizes of the papers.

The environment variable ``SIGPROP_SCALE`` (``small``, ``medium`` or ``paper``)
overrides the automatic choice, and ``SIGPROP_DEVICE`` (``cpu``, ``cuda``,
``cuda:1``...) overrides the device.
"""
from __future__ import annotations

import os
import random
from typing import Any, Mapping, Optional, TypeVar, Union

import numpy as np
import torch

from ._checks import check_device, check_int

__all__ = ["SCALES", "device", "scale", "pick", "generator", "seed_everything", "progress", "enable_inline_figures"]

#: The scale presets a chapter may choose between.
SCALES = ("small", "medium", "paper")

#: The preset a ``"medium"`` run falls back to when a chapter gives no medium sizes.
MEDIUM_FALLBACK = "small"

T = TypeVar("T")


def device(prefer: Optional[Union[str, torch.device]] = None) -> torch.device:
    """The device simulations run on.

    Order of precedence: the ``prefer`` argument, the ``SIGPROP_DEVICE``
    environment variable, CUDA when available, else the CPU.

    Raises
    ------
    ValueError
        If the requested device string is not understood by torch, or asks
        for CUDA on a machine without it.
    """
    if prefer is not None:
        return check_device(prefer, "device")
    choice = os.environ.get("SIGPROP_DEVICE")
    if choice is None or choice.strip() == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return check_device(choice.strip(), "the environment variable SIGPROP_DEVICE")


def scale(override: Optional[str] = None) -> str:
    """The scale preset: ``"small"``, ``"medium"`` or ``"paper"``.

    Precedence: ``override``, then ``SIGPROP_SCALE``, then ``"paper"`` when the
    chosen :func:`device` is a GPU and ``"small"`` otherwise.

    Raises
    ------
    ValueError
        If the preset is not one of :data:`SCALES`.
    """
    value = override if override is not None else os.environ.get("SIGPROP_SCALE")
    if value is None:
        return "paper" if device().type == "cuda" else "small"
    value = str(value).strip().lower()
    if value not in SCALES:
        raise ValueError(f"scale must be one of {SCALES} (argument or SIGPROP_SCALE); got {value!r}")
    return value


def pick(options: Mapping[str, T], preset: Optional[str] = None) -> T:
    """Choose a size by preset: ``pick({"small": 200, "medium": 800, "paper": 2000})``.

    At the ``"medium"`` preset, ``options`` without a ``"medium"`` key give their
    :data:`MEDIUM_FALLBACK` (``"small"``) value: a chapter need not size every
    experiment for the medium runs, and those it leaves out stay fast.

    Raises
    ------
    ValueError
        If ``options`` lacks the active preset (or, at ``"medium"``, both it and
        the fallback).
    """
    key = scale(preset)
    if key == "medium" and key not in options and MEDIUM_FALLBACK in options:
        key = MEDIUM_FALLBACK
    if key not in options:
        raise ValueError(f"options must define a value for scale {key!r}; got keys {sorted(options)}")
    return options[key]


def generator(seed: int = 0, device_: Optional[Union[str, torch.device]] = None) -> torch.Generator:
    """A seeded :class:`torch.Generator` on ``device_`` (default :func:`device`).

    Raises
    ------
    ValueError
        If ``seed`` is not a non-negative integer.
    """
    seed = check_int(seed, "seed", 0)
    dev = device(device_) if device_ is not None else device()
    g = torch.Generator(device=dev)
    g.manual_seed(int(seed))
    return g


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and torch's global generators (for library code
    that does not take an explicit generator, e.g. ``torch.nn`` layers).

    Raises
    ------
    ValueError
        If ``seed`` is not a non-negative integer.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def describe() -> dict[str, Any]:
    """A small dict describing the run (device, scale, torch version, threads)."""
    dev = device()
    info: dict[str, Any] = {
        "device": str(dev),
        "scale": scale(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


class _DisplayLine:
    """A file-like target for tqdm inside a Jupyter kernel: each refresh replaces one text
    output in place (``update_display_data``), so a notebook stores, and the website shows,
    only the bar's last state -- one line -- however long the loop ran."""

    def __init__(self) -> None:
        self._handle = None

    def write(self, text: str) -> None:
        line = text.replace("\r", "\n").strip().splitlines()
        if not line or not line[-1].strip():
            return
        from IPython.display import display

        bundle = {"text/plain": line[-1].rstrip()}
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def flush(self) -> None:
        pass


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress(iterable=None, desc: Optional[str] = None, total: Optional[int] = None, **kwargs):
    """A progress bar for a long loop that never floods a stored notebook or the website.

    ``for x in progress(items, "networks"):`` works like ``tqdm.auto.tqdm``, except where the
    bar goes:

    * in a Jupyter kernel (Jupyter, Colab, and the headless runs of ``make notebooks``, nbval
      and the book build): one line of text that is redrawn in place, so the notebook keeps
      only the bar's final state, e.g. ``networks: 100%|##########| 64/64 [00:03<00:00]``;
    * in a terminal: tqdm's usual bar on stderr; when stderr is not a terminal (a log
      file, CI), no bar at all (``disable=None``).

    Keyword arguments go to :class:`tqdm.std.tqdm` (``leave``, ``unit``, ...).

    Raises
    ------
    ValueError
        If ``total`` is negative.
    """
    from tqdm.std import tqdm

    if total is not None and (isinstance(total, bool) or not isinstance(total, (int, np.integer)) or total < 0):
        raise ValueError(f"total must be a non-negative integer or None; got {total!r}")
    if iterable is not None and not hasattr(iterable, "__iter__"):
        raise ValueError(f"iterable must be iterable (a list, a range, ...) or None; got {iterable!r} "
                         f"({type(iterable).__name__})")
    if _in_kernel():
        kwargs.setdefault("file", _DisplayLine())
        kwargs.setdefault("mininterval", 0.5)
        kwargs.setdefault("ncols", 80)
        kwargs.setdefault("ascii", True)
        return _KernelBar(iterable, desc=desc, total=total, **kwargs)
    kwargs.setdefault("disable", None)
    return tqdm(iterable, desc=desc, total=total, **kwargs)


def _kernel_bar_class():
    from tqdm.std import tqdm

    class KernelBar(tqdm):
        """Redrawn without its timings when it closes: the line a notebook stores (and the website
        shows) is the same in every run, e.g. ``networks: 100%|##########| 64/64``."""

        def close(self):
            if not self.disable and self.leave:
                self.bar_format = "{l_bar}{bar}| {n_fmt}/{total_fmt}"
                self.refresh()
            super().close()

    return KernelBar


def _KernelBar(*args, **kwargs):
    return _kernel_bar_class()(*args, **kwargs)


def enable_inline_figures() -> None:
    """In a Jupyter kernel, make a :class:`matplotlib.figure.Figure` built without pyplot show as
    an image when it is a cell's value. matplotlib resolves its backend lazily, and the inline
    backend registers its image formatter only once resolved; resolving it here keeps
    whatever backend the kernel chose (inline, or ``%matplotlib widget``). No-op elsewhere."""
    if not _in_kernel():
        return
    import matplotlib
    import matplotlib.pyplot as plt

    plt.switch_backend(matplotlib.rcParams["backend"])
