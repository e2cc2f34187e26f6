"""Renamed public names keep working for one release, with a :class:`DeprecationWarning`.

Each rename is listed in ``CHANGELOG.md`` under the release that made it. The helpers here are
the only way a module keeps an old name: :func:`renamed_kwarg` for a keyword argument,
:func:`renamed_function` for a function, :func:`warn_renamed` for anything else (an attribute,
a module).
"""
from __future__ import annotations

import functools
import warnings


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
