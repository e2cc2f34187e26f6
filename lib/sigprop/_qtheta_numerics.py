r"""Numerics of :math:`\mathrm Q_\theta` and of the activations :math:`\phi_\theta` behind
:mod:`sigprop.gaussian_preact` (private to it): Mellin-FFT inversion, Hermite tables, closed forms.

Write :math:`G = W Y`. Since :math:`|G| = |W|\,|Y|` with independent factors, the
Mellin transforms multiply, and for complex :math:`s` with :math:`\Re s > -1`

.. math::

    \mathbb E|Y|^{s} = \frac{\mathbb E|G|^{s}}{\mathbb E|W|^{s}}
    = \frac{2^{s/2}\,\Gamma\!\big(\tfrac{s+1}{2}\big)}{\sqrt\pi\;\Gamma\!\big(1+\tfrac{s}{\theta}\big)} .

In the variable :math:`u = \log y`, the functions :math:`e^{cu} S_{|Y|}(e^u)` and
:math:`e^{cu}\, y f_{|Y|}(y)` (survival function and density of :math:`|Y|`, with
:math:`c = 1`) have the Fourier transforms :math:`\mathbb E|Y|^{c+it}/(c+it)` and
:math:`\mathbb E|Y|^{c+it}`, which decay like :math:`e^{-\pi|t|(\theta-2)/(4\theta)}`.
We invert them with one FFT each (trapezoidal rule of step :math:`h = 0.1` in
:math:`t`, :math:`2^{16}` to :math:`2^{19}` nodes chosen so that the neglected
transform is below 1e-17). This gives :math:`S_{|Y|}` and :math:`f_{|Y|}` on a grid
of step about 1e-3 in :math:`\log y`. Against 120-digit ``mpmath`` sums of the
entire series of the density (where that series can be summed), the grid values
agree to 1e-14 (absolute) for :math:`\theta \in \{2.05, 2.5, 3, 4, 10\}`.

The odd activation solves :math:`S_{|Y|}(\phi^{\mathrm o}_\theta(x)) = 2\bar\Phi(x)`
for :math:`x \ge 0`. Each grid point :math:`y_j` gives the exact pair
:math:`(x_j, y_j)` with :math:`x_j = -\Phi^{-1}(S_{|Y|}(y_j)/2)`, and the exact slope
:math:`\phi'(x_j) = 2\varphi(x_j)/f_{|Y|}(y_j)`; cubic Hermite interpolation of these
pairs gives :math:`\phi^{\mathrm o}_\theta` on a uniform table of step 1/128 on
:math:`[-7, 7]`, and the activation is the cubic Hermite interpolant of that table
(values and exact slopes, so :math:`C^1`). Beyond :math:`|x| = 7`
(probability 2.6e-12) it follows the tail law
:math:`\phi(x) \propto |x|^{1 - 2/\theta}`. The positive family is tabulated on the same grid from
:math:`\phi^{\mathrm p}_\theta(x) = \phi^{\mathrm o}_\theta\big(\Phi^{-1}(\tfrac{1+\Phi(x)}2)\big)`,
and far left it follows :math:`\phi^{\mathrm p}_\theta(x) \approx \phi^{\mathrm o\prime}_\theta(0)\sqrt{\pi/2}\,\Phi(x)`.
Measured error (``tests/test_gaussian_preact.py``): the Gaussian moments
:math:`\mathbb E|\phi_\theta(X)|^p` match the exact :math:`\mathbb E|Y|^p` to a
relative 1e-9 or better for :math:`p = 1, \dots, 6` and the seven values of
:math:`\theta` of the paper, and :math:`W\phi_\theta(X)` passes the KS test at
:math:`10^6` samples. At :math:`\theta = 2` the law is the arcsine law and
:math:`\phi^{\mathrm o}_2(x) = \sqrt2\sin(\pi(\Phi(x) - \tfrac12))`,
:math:`\phi^{\mathrm p}_2(x) = \sqrt2\sin(\tfrac\pi2\Phi(x))` in closed form; at
:math:`\theta = \infty`, :math:`W = \pm1` and :math:`\phi^{\mathrm o}` is the identity.
Between 2 and 2.01 the transform decays too slowly for the FFT and ``theta`` is refused.

Tables are built lazily, once per :math:`\theta` (about 0.05 s), and cached.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Dict, Tuple

import numpy as np
import torch

Tensor = torch.Tensor

_X_TABLE = 7.0              # the activation table covers |x| <= 7
_DX_TABLE = 1.0 / 128.0
_SQRT2 = math.sqrt(2.0)


def _log_mellin(s: np.ndarray, theta: float) -> np.ndarray:
    """log E|Y|^s for complex s (Re s > -1)."""
    from scipy.special import loggamma

    return 0.5 * s * math.log(2.0) + loggamma(0.5 * (s + 1.0)) - 0.5 * math.log(math.pi) - loggamma(1.0 + s / theta)


class _QTable:
    """S_{|Y|} and f_{|Y|} on a log grid, and the odd activation on a uniform x table (numpy, float64)."""

    def __init__(self, theta: float):
        from scipy.special import log_ndtr as special_log_ndtr
        from scipy.special import ndtr, ndtri

        self.theta = theta
        c, h, u_hi = 1.0, 0.1, math.log(12.0)
        # Smallest power of two whose half-range in t leaves a transform below 1e-17 (relative).
        n = 1 << 16
        while True:
            t_max = 0.5 * n * h
            lm = _log_mellin(np.array([c + 1j * t_max]), theta).real[0] - _log_mellin(np.array([c + 0j]), theta).real[0]
            if lm < math.log(1e-17) or n >= (1 << 19):
                break
            n <<= 1
        self.n_fft = n
        k = np.fft.fftfreq(n, d=1.0 / n)
        t = k * h
        s = c + 1j * t
        mell = np.exp(_log_mellin(s, theta))
        delta = 2.0 * math.pi / (n * h)
        u0 = u_hi - n * delta
        phase = np.exp(-1j * t * u0)
        u = u0 + delta * np.arange(n)
        damp = np.exp(-c * u) * (h / (2.0 * math.pi))
        surv = np.fft.fft(mell / s * phase).real * damp
        yf = np.fft.fft(mell * phase).real * damp  # g(u) = y f(y)
        dyf = np.fft.fft(-s * mell * phase).real * damp  # g'(u)
        keep = u > -14.0
        self.u, self.surv, self.yf = u[keep], np.clip(surv[keep], 0.0, 1.0), np.clip(yf[keep], 0.0, None)
        self.dyf = dyf[keep]
        self.f0 = math.sqrt(2.0 / math.pi) / math.gamma(1.0 - 1.0 / theta)  # f_{|Y|}(0)

        # Odd activation on x >= 0 from the exact pairs (x_j, y_j).
        s_min = 2.0 * ndtr(-_X_TABLE - 0.25)
        ok = (self.surv > s_min) & (self.surv < 1.0 - 1e-14) & (self.yf > 0) & (self.u > -8.0)
        y = np.exp(self.u[ok])
        xj = -ndtri(0.5 * self.surv[ok])
        ly = self.u[ok]
        dly = 2.0 * _npdf(xj) / self.yf[ok]  # d log y / dx = 2 phi_N(x) / (y f(y))
        order = np.argsort(xj)
        xj, ly, dly = xj[order], ly[order], dly[order]
        mono = np.concatenate([[True], np.diff(xj) > 0])
        xj, ly, dly = xj[mono], ly[mono], dly[mono]
        xs = np.arange(0.0, _X_TABLE + 0.5 * _DX_TABLE, _DX_TABLE)
        lys, dlys = _hermite_np(xj, ly, dly, xs[1:])
        ys = np.concatenate([[0.0], np.exp(lys)])
        slope = np.concatenate([[2.0 * _npdf(0.0) / self.f0], np.exp(lys) * dlys])
        # Symmetric (odd) table on [-X, X].
        self.x_tab = np.concatenate([-xs[:0:-1], xs])
        self.y_tab = np.concatenate([-ys[:0:-1], ys])
        self.d_tab = np.concatenate([slope[:0:-1], slope])
        self.tail_power = 1.0 - 2.0 / theta
        self.slope0 = float(slope[0])
        # Positive family on the same grid: phi^p(x) = phi^o(g(x)), g(x) = Phi^{-1}((1 + Phi(x))/2).
        xp = self.x_tab
        with np.errstate(over="ignore"):
            g = np.where(xp < -5.0, np.exp(special_log_ndtr(xp)) * 0.5 * math.sqrt(2 * math.pi),
                         -ndtri(0.5 * ndtr(-xp)))
        dg = 0.5 * np.exp(-0.5 * xp * xp + 0.5 * g * g)
        inside = g <= _X_TABLE
        vo, do = _hermite_np(self.x_tab, self.y_tab, self.d_tab, np.minimum(g, _X_TABLE))
        ratio = np.maximum(g, _X_TABLE) / _X_TABLE
        vo = np.where(inside, vo, ys[-1] * ratio**self.tail_power)
        do = np.where(inside, do, self.tail_power * ys[-1] / _X_TABLE * ratio ** (self.tail_power - 1.0))
        self.yp_tab, self.dp_tab = vo, do * dg
        self._torch: Dict[Tuple[str, torch.dtype, str], Tuple[float, Tensor]] = {}

        self.edge = {"odd": float(self.y_tab[-1]), "positive": float(self.yp_tab[-1])}

    def tensors(self, device: torch.device, dtype: torch.dtype, family: str) -> Tuple[float, Tensor]:
        """(x_0, Horner coefficients (K, 4) of the Hermite cubic on each interval) for ``family``."""
        key = (str(device), dtype, family)
        if key not in self._torch:
            ys, ds = (self.y_tab, self.d_tab) if family == "odd" else (self.yp_tab, self.dp_tab)
            h = _DX_TABLE
            y0, y1, m0, m1 = ys[:-1], ys[1:], h * ds[:-1], h * ds[1:]
            coef = np.stack([y0, m0, 3 * (y1 - y0) - 2 * m0 - m1, 2 * (y0 - y1) + m0 + m1], axis=-1)
            self._torch[key] = (float(self.x_tab[0]), torch.as_tensor(coef, dtype=dtype, device=device))
        return self._torch[key]

    # survival / density of |Y| at arbitrary y >= 0 (numpy)
    def _on_log_grid(self, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(y as float64, y > 0, log y (0 where y <= 0), points inside the table's log-grid)."""
        y = np.asarray(y, dtype=np.float64)
        pos = y > 0
        lu = np.log(np.where(pos, y, 1.0))
        return y, pos, lu, pos & (lu >= self.u[0]) & (lu <= self.u[-1])

    def survival(self, y: np.ndarray) -> np.ndarray:
        y, pos, lu, inside = self._on_log_grid(y)
        out = np.ones_like(y)
        ds = -self.yf  # dS/du
        val, _ = _hermite_np(self.u, self.surv, ds, lu[inside])
        out[inside] = np.clip(val, 0.0, 1.0)
        small = pos & (lu < self.u[0])
        out[small] = 1.0 - self.f0 * y[small]
        out[pos & (lu > self.u[-1])] = 0.0
        return out

    def density(self, y: np.ndarray) -> np.ndarray:
        y, pos, lu, inside = self._on_log_grid(y)
        out = np.zeros_like(y)
        # cubic Hermite interpolation of g(u) = y f(y) with its exact slope, then divide by y
        val, _ = _hermite_np(self.u, self.yf, self.dyf, lu[inside])
        out[inside] = np.clip(val, 0.0, None) / y[inside]
        out[(pos & (lu < self.u[0])) | (y == 0)] = self.f0
        return out


def _npdf(x):
    return np.exp(-0.5 * np.square(x)) / math.sqrt(2.0 * math.pi)


def _hermite_np(xk: np.ndarray, yk: np.ndarray, dk: np.ndarray, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Cubic Hermite interpolation (value, derivative) on sorted knots (numpy)."""
    i = np.clip(np.searchsorted(xk, x) - 1, 0, len(xk) - 2)
    h = xk[i + 1] - xk[i]
    s = (x - xk[i]) / h
    h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
    val = h00 * yk[i] + h10 * h * dk[i] + h01 * yk[i + 1] + h11 * h * dk[i + 1]
    d00, d10, d01, d11 = 6 * s**2 - 6 * s, 3 * s**2 - 4 * s + 1, -6 * s**2 + 6 * s, 3 * s**2 - 2 * s
    der = (d00 * yk[i] + d01 * yk[i + 1]) / h + d10 * dk[i] + d11 * dk[i + 1]
    return val, der


@lru_cache(maxsize=32)
def _table(theta: float) -> _QTable:
    return _QTable(theta)


def _arcsine_survival(y: np.ndarray) -> np.ndarray:
    # theta = 2: |Y| = sqrt(2) |sin(pi U / 2)|, S(y) = 1 - (2/pi) arcsin(y / sqrt 2)
    return np.where(y >= _SQRT2, 0.0, 1.0 - (2.0 / math.pi) * np.arcsin(np.clip(y / _SQRT2, 0.0, 1.0)))


def _table_eval(x: Tensor, theta: float, family: str) -> Tuple[Tensor, Tensor]:
    """phi_theta and phi_theta' from the tables, in x's dtype and on its device (no autograd).

    Each table interval holds the cubic Hermite polynomial as Horner coefficients in
    s = (x - x_k)/h, so one gather and a few multiply-adds evaluate value and slope.
    """
    tab = _table(theta)
    x0, coef = tab.tensors(x.device, x.dtype, family)
    inv_h = 1.0 / _DX_TABLE
    xc = x.clamp(-_X_TABLE, _X_TABLE)
    pos = (xc - x0) * inv_h
    idx = pos.floor().clamp_(0, coef.shape[0] - 1)
    sv = pos - idx
    c = coef[idx.long()]
    a0, a1, a2, a3 = c.unbind(-1)
    val = ((a3 * sv + a2) * sv + a1) * sv + a0
    der = ((3.0 * a3 * sv + 2.0 * a2) * sv + a1) * inv_h
    if not bool((x.abs() > _X_TABLE).any()):
        return val, der
    p = tab.tail_power
    edge = tab.edge[family]
    ratio = x.clamp(min=_X_TABLE) * (1.0 / _X_TABLE)
    right_v, right_d = edge * ratio.pow(p), (p * edge / _X_TABLE) * ratio.pow(p - 1.0)
    if family == "odd":
        ratio_l = (-x).clamp(min=_X_TABLE) * (1.0 / _X_TABLE)
        left_v, left_d = -edge * ratio_l.pow(p), (p * edge / _X_TABLE) * ratio_l.pow(p - 1.0)
    else:  # phi^p(x) ~ phi^o'(0) sqrt(2 pi)/2 Phi(x) far left
        cst = tab.slope0 * 0.5 * math.sqrt(2.0 * math.pi)
        xl = x.clamp(max=-_X_TABLE)
        left_v = cst * torch.exp(torch.special.log_ndtr(xl))
        left_d = cst * torch.exp(-0.5 * xl * xl) / math.sqrt(2.0 * math.pi)
    val = torch.where(x > _X_TABLE, right_v, torch.where(x < -_X_TABLE, left_v, val))
    der = torch.where(x > _X_TABLE, right_d, torch.where(x < -_X_TABLE, left_d, der))
    return val, der


class _PhiFunction(torch.autograd.Function):
    """phi_theta with its tabulated derivative as the backward (one node in the autograd graph)."""

    @staticmethod
    def forward(ctx, x, theta, family):
        val, der = _table_eval(x, theta, family)
        ctx.save_for_backward(der)
        return val

    @staticmethod
    def backward(ctx, grad):
        (der,) = ctx.saved_tensors
        return grad * der, None, None


def _fold(x: Tensor) -> Tuple[Tensor, Tensor]:
    """g(x) = Phi^{-1}((1 + Phi(x))/2) >= 0 and g'(x), computed stably for large |x| (torch)."""
    # ndtri loses its tail for tiny arguments: above x = 5 solve log Phibar(g) = log Phibar(x) - log 2
    # by Newton's method in log space (5 steps reach machine precision from g = x).
    lo = x.clamp(-5.0, 5.0)
    g_lo = -torch.special.ndtri(0.5 * torch.special.ndtr(-lo))
    hi = x.clamp(min=5.0)
    target = torch.special.log_ndtr(-hi) - math.log(2.0)
    g_hi = hi
    for _ in range(5):
        lsf = torch.special.log_ndtr(-g_hi)
        ratio = torch.exp(-0.5 * g_hi * g_hi - 0.5 * math.log(2 * math.pi) - lsf)  # phi(g)/Phibar(g)
        g_hi = g_hi + (lsf - target) / ratio
    # far left, (1 + Phi(x))/2 rounds to 1/2: g = Phi(x) sqrt(2 pi)/2 (relative error O(Phi(x)^2))
    g_left = torch.exp(torch.special.log_ndtr(x.clamp(max=-5.0))) * (0.5 * math.sqrt(2 * math.pi))
    g = torch.where(x > 5.0, g_hi, torch.where(x < -5.0, g_left, g_lo))
    dg = torch.exp(-0.5 * x * x + 0.5 * g * g) * 0.5
    return g, dg


def _closed_form(t: Tensor, theta: float, family: str) -> Tuple[Tensor, Tensor]:
    """theta = 2 and theta = inf (torch ops, autograd through the value)."""
    pdf = torch.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
    if theta == 2.0:
        if family == "odd":
            arg = math.pi * (torch.special.ndtr(t) - 0.5)
            return _SQRT2 * torch.sin(arg), _SQRT2 * math.pi * torch.cos(arg) * pdf
        arg = 0.5 * math.pi * torch.exp(torch.special.log_ndtr(t))
        return _SQRT2 * torch.sin(arg), _SQRT2 * 0.5 * math.pi * torch.cos(arg) * pdf
    if family == "odd":
        return t, torch.ones_like(t)
    return _fold(t)
