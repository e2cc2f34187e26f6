"""Names and modules that moved to another module keep working for one release (CHANGELOG.md).

A module whose public names moved sets ``__getattr__ = moved_names(__name__, {...})``; a
module that moved as a whole calls :func:`warn_module_moved` at import and re-exports the
names of its new home.  Either way the old spelling keeps working, with a
:class:`DeprecationWarning` that names the new home (the renames within a module are
:mod:`sigprop._deprecation`'s).
"""
from __future__ import annotations

import importlib
import warnings
from typing import Callable, Dict


def _warn(old: str, new: str, stacklevel: int) -> None:
    warnings.warn(f"{old} is deprecated and will be removed in the next release; use {new} instead",
                  DeprecationWarning, stacklevel=stacklevel + 1)


def moved_names(module: str, new_homes: Dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` serving ``module.<name>`` from the module ``new_homes[name]``,
    with a :class:`DeprecationWarning`."""

    def __getattr__(name: str):
        if name not in new_homes:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        _warn(f"{module}.{name}", f"{new_homes[name]}.{name}", stacklevel=2)
        return getattr(importlib.import_module(new_homes[name]), name)

    return __getattr__


def warn_module_moved(module: str, home: str) -> None:
    """Warn, when ``module`` is imported, that it is a deprecated alias of the module ``home``."""
    _warn(f"the module {module}", home, stacklevel=3)
