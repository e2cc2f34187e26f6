"""The boundary layer of argument checks (private): every public function checks what it is
given here, before any work, so that bad input fails at the user's call with a message that
names the argument, the value and the allowed range.

One helper per kind of argument: integers (:func:`check_int`), real numbers
(:func:`check_real`), non-negative scales (:func:`check_nonneg`), arrays of reals
(:func:`real_tensor`, :func:`real_array`), non-negative scales that may be tensors
(:func:`check_scale`), data tensors (:func:`check_tensor`), shapes (:func:`check_shape`),
functions (:func:`check_callable`), paths (:func:`check_path`), random generators
(:func:`check_generator`), devices (:func:`check_device`), floating dtypes
(:func:`check_dtype`), and budgets for work that would run for minutes or exhaust memory
(:func:`check_budget`). Modules import these by their public names (no underscore), so that
no module reaches into another's private parts.
"""
from __future__ import annotations

import math
import numbers
import os
from typing import Optional

import numpy as np
import torch

Tensor = torch.Tensor

__all__ = ["check_int", "check_real", "check_nonneg", "real_tensor", "real_array", "check_tensor", "check_generator",
           "check_device", "resolve_device", "check_dtype", "check_budget", "BUDGET_ENV", "check_shape", "check_callable",
           "check_scale", "check_path", "shown", "check_alloc"]


def _interval(lo: float, hi: float, lo_open: bool, hi_open: bool) -> str:
    return f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def check_int(value, name: str, low: int = 1, high: Optional[int] = None) -> int:
    """An integer (not a bool, not a float such as 2.5 or nan) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r} ({type(value).__name__})")
    if value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {rng}; got {value!r}")
    return int(value)


def check_real(value, name: str, lo: float = -math.inf, hi: float = math.inf, *, lo_open: bool = False,
               hi_open: bool = False, allow_inf: bool = False) -> float:
    """A real number (not a bool, string, None or complex) in the interval; finite unless
    ``allow_inf``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number in {_interval(lo, hi, lo_open, hi_open)}; "
                         f"got {value!r} ({type(value).__name__})")
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{name} must be a finite real number in {_interval(lo, hi, lo_open, hi_open)}; got {value!r}")
    if (v <= lo if lo_open else v < lo) or (v >= hi if hi_open else v > hi):
        raise ValueError(f"{name} must be in {_interval(lo, hi, lo_open, hi_open)}; got {value!r}")
    return v


def check_nonneg(value, name: str) -> float:
    """A finite real number >= 0 (a standard deviation, a gain)."""
    return check_real(value, name, 0.0)


def real_tensor(value, name: str, device=None) -> Tensor:
    """A number, sequence, array or tensor of real numbers as a float64 tensor (on ``device``,
    else the tensor's own); strings, None, booleans and complex values are refused."""
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise ValueError(f"{name} must hold real numbers; got a tensor of dtype {value.dtype}")
        return value.to(dtype=torch.float64, device=device if device is not None else value.device)
    if value is None or isinstance(value, (str, bytes, bool, complex, np.bool_)):
        raise ValueError(f"{name} must be a real number or an array of them; got {value!r} ({type(value).__name__})")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real number or an array of them; got {value!r}") from exc
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold real numbers; got {value!r} (dtype {arr.dtype})")
    return torch.as_tensor(arr.astype(np.float64), dtype=torch.float64, device=device)


def check_tensor(x, name: str, *, finite: bool = True, min_dim: int = 0) -> Tensor:
    """A real (not complex) tensor with at least ``min_dim`` axes, finite when ``finite``."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.is_complex():
        raise ValueError(f"{name} must be real; got a complex tensor ({x.dtype}): pass x.real or x.abs()")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions; got shape {tuple(x.shape)}")
    if finite and x.is_floating_point() and x.numel() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} must be finite; got {bad} nan or inf value(s) of {x.numel()}")
    return x


def check_generator(generator, name: str = "generator") -> Optional[torch.Generator]:
    """``None`` or a :class:`torch.Generator` (a seed is not a generator)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        hint = (f"; for a seed use torch.Generator().manual_seed({generator})"
                if isinstance(generator, numbers.Integral) and not isinstance(generator, bool) else "")
        raise ValueError(f"{name} must be a torch.Generator or None; got {generator!r} "
                         f"({type(generator).__name__}){hint}")
    return generator


def check_device(device, name: str = "device") -> torch.device:
    """A device this machine can compute on: 'cpu', 'cuda' or 'cuda:<index>' (with CUDA), 'mps'
    (with MPS). 'meta' (no data) is refused."""
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"{name} must be 'cpu', 'cuda' or 'cuda:<index>' (a str or torch.device); "
                         f"got {device!r} ({type(device).__name__})")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be 'cpu', 'cuda' or 'cuda:<index>'; got {device!r}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name} {str(device)!r} was requested but CUDA is not available on this machine; "
                             "use 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{name} {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"{name} {str(device)!r} was requested but MPS is not available on this machine")
    elif dev.type != "cpu":
        raise ValueError(f"{name} must be 'cpu', 'cuda' or 'cuda:<index>'; got {str(device)!r} "
                         f"({'a meta device holds no data' if dev.type == 'meta' else 'not supported'})")
    return dev


def resolve_device(device, generator) -> torch.device:
    """The device a sampler draws on: ``device`` when given (checked), else the generator's,
    else :func:`sigprop.runtime.device`."""
    check_generator(generator)
    if device is not None:
        return check_device(device)
    if generator is not None:
        return generator.device
    from . import runtime  # runtime imports this module: imported here, not at the top
    return runtime.device()


def check_dtype(dtype, name: str = "dtype") -> torch.dtype:
    """A floating-point :class:`torch.dtype`."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"{name} must be a floating torch.dtype (torch.float32 or torch.float64); got {dtype!r}")
    return dtype


#: The environment variable that raises the work budget of :func:`check_budget` (a factor, or 'off').
BUDGET_ENV = "SIGPROP_MAX_WORK"
#: What one call may take before it is refused: CPU seconds (estimated) and bytes held at once.
BUDGET_SECONDS = 120.0
BUDGET_BYTES = 4 * 2**30


def _budget_factor() -> float:
    raw = os.environ.get(BUDGET_ENV)
    if raw is None or raw.strip() == "":
        return 1.0
    if raw.strip().lower() in ("inf", "none", "off"):
        return math.inf
    try:
        factor = float(raw)
    except ValueError:
        raise ValueError(f"{BUDGET_ENV} must be a number (a factor on the work budget) or 'off'; got {raw!r}") from None
    if not factor > 0:
        raise ValueError(f"{BUDGET_ENV} must be > 0 or 'off'; got {raw!r}")
    return factor


def check_budget(what: str, *, seconds: float = 0.0, nbytes: float = 0.0, device=None) -> None:
    """Refuses, before it starts, work estimated to take more than ``BUDGET_SECONDS`` (2 minutes)
    of one CPU core or to hold more than ``BUDGET_BYTES`` (4 GiB) at once; the message gives
    the estimate and how to allow it (``SIGPROP_MAX_WORK=<factor>`` multiplies both limits,
    ``SIGPROP_MAX_WORK=off`` lifts them). On a GPU the time estimate is divided by 50 and the
    memory budget is the GPU's memory (when larger than 4 GiB)."""
    factor = _budget_factor()
    budget_bytes = BUDGET_BYTES
    if str(getattr(device, "type", device)).startswith("cuda"):  # unchecked yet: never raises here
        seconds = seconds / 50.0
        try:  # on a GPU, its own memory is the limit
            budget_bytes = max(BUDGET_BYTES, torch.cuda.get_device_properties(torch.device(device)).total_memory)
        except Exception:  # noqa: BLE001 - no CUDA, or a bad index: the device check reports it
            pass
    over = []
    if seconds > BUDGET_SECONDS * factor:
        over.append(f"about {seconds:,.0f} s of work (budget {BUDGET_SECONDS * factor:,.0f} s)")
    if nbytes > budget_bytes * factor:
        over.append(f"about {nbytes / 2**30:,.1f} GiB held at once (budget {budget_bytes * factor / 2**30:,.1f} GiB)")
    if over:
        raise ValueError(f"{what}: the estimate is {' and '.join(over)}, past the work budget. Make the problem "
                         f"smaller, or allow it with the environment variable {BUDGET_ENV}=<factor> (e.g. 10), "
                         f"or {BUDGET_ENV}=off")


def real_array(value, name: str, *, low: Optional[float] = None, strict: bool = False, finite: bool = True) -> Tensor:
    """:func:`real_tensor` (detached), finite unless ``finite=False``, and ``>= low``
    (``> low`` with ``strict``)."""
    t = real_tensor(value.detach() if isinstance(value, Tensor) else value, name)
    if finite and not bool(torch.all(torch.isfinite(t))):
        raise ValueError(f"{name} must be real and finite; got {value!r}")
    if torch.isnan(t).any():
        raise ValueError(f"{name} must not be nan; got {value!r}")
    if low is not None and (bool(torch.any(t <= low)) if strict else bool(torch.any(t < low))):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}; got {value!r}")
    return t


def check_shape(shape, name: str = "shape", *, min_dim: int = 0, low: int = 0) -> tuple:
    """A sequence of integers (not a string, not floats such as 2.5) with at least
    ``min_dim`` entries, each ``>= low``; a bare integer is a 1-D shape."""
    if isinstance(shape, (numbers.Integral, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    ok = isinstance(shape, (tuple, list)) and all(  # 4.0 is taken as 4, 2.5 is not
        isinstance(s, (numbers.Real, np.integer, np.floating)) and not isinstance(s, bool)
        and math.isfinite(s) and float(s).is_integer() for s in shape)
    if not ok or len(shape) < min_dim or any(s < low for s in shape):
        what = f"at least {min_dim} " if min_dim else ""
        raise ValueError(f"{name} must be a sequence of {what}integers >= {low}; got {shape!r}")
    return tuple(int(s) for s in shape)


def check_callable(value, name: str, what: str = "a function") -> object:
    """A callable (a function, a lambda, a module)."""
    if not callable(value):
        raise ValueError(f"{name} must be {what} (a callable); got {value!r} ({type(value).__name__})")
    return value


def check_scale(value, name: str):
    """A non-negative finite number (returned as float), or a real tensor of them (returned as is)."""
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise ValueError(f"{name} must be a real number or a real tensor; got dtype {value.dtype}")
        if not bool(torch.all(torch.isfinite(value))) or bool(torch.any(value < 0)):
            raise ValueError(f"{name} must be finite and >= 0; got {value}")
        return value
    return check_real(value, name, 0.0)


def check_path(path, name: str = "path"):
    """A str or os.PathLike (not empty), as a :class:`pathlib.Path`."""
    from pathlib import Path

    if isinstance(path, (str, os.PathLike)) and str(path):
        return Path(path)
    raise ValueError(f"{name} must be a path (a str or pathlib.Path); got {path!r} ({type(path).__name__})")


def shown(t: Tensor, ok: Optional[Tensor] = None, limit: int = 3) -> str:
    """The offending values of ``t`` for a message: ``got nan`` for a scalar, else
    ``got [-1.0, nan] (2 of 12 values)``; ``ok`` marks the good entries (default: finite)."""
    t = t.detach()
    ok = torch.isfinite(t) if ok is None else ok
    if t.dim() == 0:
        return f"got {t.item()!r}"
    bad = t[~ok.expand_as(t)].flatten()
    head = ", ".join(repr(v) for v in bad[:limit].tolist()) + (", ..." if bad.numel() > limit else "")
    return f"got [{head}] ({bad.numel()} of {t.numel()} values)"


def check_alloc(what: str, numel: float, dtype=torch.float32, device=None, copies: float = 1.0) -> None:
    """:func:`check_budget` for a tensor of ``numel`` entries of ``dtype`` (``copies`` of it held
    at once), before it is allocated."""
    itemsize = torch.empty((), dtype=dtype).element_size() if isinstance(dtype, torch.dtype) else 8
    check_budget(what, nbytes=float(numel) * itemsize * copies, device=device)
