"""Device choice, seeding and the scale preset.

The same chapter code runs at two scales:

* ``"small"`` (the default on a CPU): sizes chosen so that every chapter runs
  top to bottom in about a minute on two CPU cores;
* ``"paper"`` (the default when a CUDA GPU is visible): the sizes of the papers.

The environment variable ``SIGPROP_SCALE`` (``small`` or ``paper``) overrides
the automatic choice, and ``SIGPROP_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``...)
overrides the device.
"""
from __future__ import annotations

import os
import random
from typing import Any, Mapping, Optional, TypeVar, Union

import numpy as np
import torch

__all__ = ["SCALES", "device", "scale", "pick", "generator", "seed_everything"]

#: The scale presets a chapter may choose between.
SCALES = ("small", "paper")

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
    choice = prefer if prefer is not None else os.environ.get("SIGPROP_DEVICE")
    if choice is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(choice)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:<index>'; got {choice!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {choice!r} was requested but CUDA is not available on this machine")
    return dev


def scale(override: Optional[str] = None) -> str:
    """The scale preset: ``"small"`` or ``"paper"``.

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
    """Choose a size by preset: ``pick({"small": 200, "paper": 2000})``.

    Raises
    ------
    ValueError
        If ``options`` lacks the active preset.
    """
    key = scale(preset)
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
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    dev = device(device_) if not isinstance(device_, torch.device) else device_
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
