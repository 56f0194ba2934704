"""Exact mean and standard deviation, whatever the order and grouping of the values.

A float sum depends on the order it is taken in (numpy sums pairwise, over the
array it is given), so a scaling fitted batch by batch would differ in its
last bits from one fitted on the whole table. Here each value is split into
integers (``x = M * 2**(e - 53)``, ``M`` cut in pieces small enough that their
float sums stay exact) and the sums are kept as Python integers: the sum of
``x`` and of ``x**2`` are exact, so the mean and the variance are correctly
rounded fractions, the same for one batch or many, in any order.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

_EXPONENTS = 2 * 1076
"""frexp exponents, offset by ``_BIAS``: every finite float64 has one."""
_BIAS = 1074
"""``x * 2**(_BIAS + 53)`` is an integer for every finite float64."""
_ROWS = 1 << 22
"""Rows summed in one float pass: sums of pieces below 2**30 stay below 2**52."""


class Moments:
    """Count, exact sum and exact sum of squares of finite values, added in parts."""

    def __init__(self) -> None:
        self.n = 0
        self._sum = 0  # sum(x) * 2**(_BIAS + 53)
        self._squares = 0  # sum(x**2) * 2**(2 * (_BIAS + 53))
        self._positive_inf = self._negative_inf = False

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        infinite = np.isinf(x)
        if infinite.any():
            self._positive_inf |= bool((x[infinite] > 0).any())
            self._negative_inf |= bool((x[infinite] < 0).any())
            x = x[~infinite]
        self.n += int(x.size)
        for start in range(0, x.size, _ROWS):
            s, q = _exact(x[start:start + _ROWS])
            self._sum += s
            self._squares += q

    def mean(self) -> float:
        """The mean, correctly rounded (0.0 without values)."""
        if self._positive_inf or self._negative_inf:
            return math.nan if self._positive_inf and self._negative_inf else \
                (math.inf if self._positive_inf else -math.inf)
        if not self.n:
            return 0.0
        return float(Fraction(self._sum, self.n << (_BIAS + 53)))

    def std(self) -> float:
        """The population standard deviation (``ddof=0``): the square root of the
        correctly rounded variance (0.0 without values, NaN with infinities)."""
        if self._positive_inf or self._negative_inf:
            return math.nan
        if not self.n:
            return 0.0
        spread = self.n * self._squares - self._sum * self._sum  # n**2 var, scaled
        try:
            return math.sqrt(float(Fraction(spread, (self.n * self.n) << (2 * (_BIAS + 53)))))
        except OverflowError:  # a variance beyond the float range, as numpy's
            return math.inf


def _exact(x: np.ndarray) -> tuple[int, int]:
    """``sum(x)`` and ``sum(x**2)`` as integers scaled by ``2**(_BIAS + 53)`` and its
    square, for at most ``_ROWS`` finite values."""
    if not x.size:
        return 0, 0
    mantissa, exponent = np.frexp(x)
    whole = (mantissa * 2.0**53).astype(np.int64)  # exact: |whole| < 2**53
    slot = (exponent + _BIAS).astype(np.intp)  # x = whole * 2**(slot - _BIAS - 53)
    total = 0
    for shift, piece in ((26, whole >> 26), (0, whole & ((1 << 26) - 1))):
        sums = np.bincount(slot, weights=piece, minlength=_EXPONENTS)
        for at in np.flatnonzero(sums):
            total += int(sums[at]) << (int(at) + shift)
    # |whole|**2 from four 14-bit pieces: each product < 2**28, four of them per power
    size = np.abs(whole)
    pieces = [(size >> (14 * k)) & 0x3FFF for k in range(4)]
    squares = 0
    for power in range(7):
        terms = [pieces[i] * pieces[power - i] for i in range(4) if 0 <= power - i < 4]
        combined = terms[0] if len(terms) == 1 else np.sum(terms, axis=0)
        sums = np.bincount(slot, weights=combined, minlength=_EXPONENTS)
        for at in np.flatnonzero(sums):
            squares += int(sums[at]) << (2 * int(at) + 14 * power)
    return total, squares
