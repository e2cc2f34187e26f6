"""Deprecated: the predictions for the moments of signal and noise now live in :mod:`sigprop.moment_theory`.

This module re-exports them for one release (see CHANGELOG.md).
"""
from __future__ import annotations

from .._deprecation import warn_module_moved
from ..moment_theory import (  # noqa: F401
    GAUSSIAN_ACTIVATION_INCREMENT, GAUSSIAN_NU1_ABS, activation_increment, resnet_exponent,
    vanilla_log_moment_diffusion,
)

warn_module_moved(__name__, "sigprop.moment_theory")

__all__ = [
    "GAUSSIAN_NU1_ABS", "GAUSSIAN_ACTIVATION_INCREMENT", "activation_increment",
    "resnet_exponent", "vanilla_log_moment_diffusion",
]
