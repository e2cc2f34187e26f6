"""Deprecated: the mean field of residual networks now lives in :mod:`sigprop.resnet_theory`.

This module re-exports :func:`~sigprop.resnet_theory.resnet_mean_field`,
:func:`~sigprop.resnet_theory.effective_cumulant` and
:func:`~sigprop.resnet_theory.sigma_w_for_cumulant` for one release (see CHANGELOG.md).
"""
from __future__ import annotations

from ._deprecation import warn_module_moved
from .resnet_theory import effective_cumulant, resnet_mean_field, sigma_w_for_cumulant

warn_module_moved(__name__, "sigprop.resnet_theory")

__all__ = ["resnet_mean_field", "effective_cumulant", "sigma_w_for_cumulant"]
