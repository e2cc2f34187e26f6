"""Renamed and moved public names keep working for one release, with a :class:`DeprecationWarning`.

Each change is listed in ``CHANGELOG.md`` under the release that made it. The helpers here are
the only way a module keeps an old name: :func:`renamed_kwarg` for a keyword argument,
:func:`renamed_function` for a function, :func:`moved_names` for names that moved to another
module (the old module sets ``__getattr__ = moved_names(__name__, {...})``),
:func:`warn_module_moved` for a module that moved as a whole (it re-exports its new home's
names), :func:`warn_renamed` for anything else (an attribute).
"""
from __future__ import annotations

import functools
import importlib
import warnings
from typing import Callable, Dict


def warn_renamed(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new`` (``stacklevel`` points at the caller)."""
    warnings.warn(f"{old} is deprecated and will be removed in the next release; use {new} instead",
                  DeprecationWarning, stacklevel=stacklevel)


def renamed_kwarg(old: str, new: str, where: str):
    """Decorator: the keyword ``old`` of ``where`` is accepted as ``new``, with a warning.

    Passing both is a :class:`TypeError`, as for any argument given twice."""
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"{where}() got both {new}= and its deprecated name {old}=; pass {new}= only")
                warn_renamed(f"{where}({old}=...)", f"{where}({new}=...)")
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)
        return wrapper
    return decorate


def renamed_function(fn, old: str, module: str):
    """A deprecated alias ``module.old`` of ``fn``: calls ``fn`` after a warning."""
    @functools.wraps(fn)
    def alias(*args, **kwargs):
        warn_renamed(f"{module}.{old}", f"{module}.{fn.__name__}")
        return fn(*args, **kwargs)
    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = f"Deprecated alias of :func:`{fn.__name__}` (removed in the next release)."
    return alias


def moved_names(module: str, new_homes: Dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` serving ``module.<name>`` from the module ``new_homes[name]``,
    with a :class:`DeprecationWarning`."""

    def __getattr__(name: str):
        if name not in new_homes:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warn_renamed(f"{module}.{name}", f"{new_homes[name]}.{name}")
        return getattr(importlib.import_module(new_homes[name]), name)

    return __getattr__


def warn_module_moved(module: str, home: str) -> None:
    """Warn, when ``module`` is imported, that it is a deprecated alias of the module ``home``."""
    warn_renamed(f"the module {module}", home, stacklevel=4)
