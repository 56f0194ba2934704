"""The scaling of a feature is fitted from exact sums: the same for any grouping."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from ingest.features.exact import Moments


def _exact(x: np.ndarray) -> tuple[float, float]:
    mean = sum(Fraction(v) for v in x) / len(x)
    variance = sum((Fraction(v) - mean) ** 2 for v in x) / len(x)
    return float(mean), math.sqrt(float(variance))


SAMPLES = {
    "normal": np.random.default_rng(1).normal(5, 3, 2_000),
    "tiny": np.random.default_rng(2).exponential(1e-300, 300),
    "integers": np.random.default_rng(3).integers(-10**6, 10**6, 2_000).astype(float),
    "mixed-scales": np.array([1e15, 1.0, -1e15, 3e-7, 2.5, -0.0, 5e-324]),
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_mean_and_std_are_the_correctly_rounded_ones(name: str) -> None:
    x = SAMPLES[name]
    m = Moments()
    m.add(x)
    assert (m.mean(), m.std()) == _exact(x)
    assert m.n == x.size


@pytest.mark.parametrize("name", list(SAMPLES))
def test_any_grouping_and_order_gives_the_same_bits(name: str) -> None:
    x = SAMPLES[name]
    whole = Moments()
    whole.add(x)
    rng = np.random.default_rng(0)
    for _ in range(3):
        shuffled = rng.permutation(x)
        cuts = np.sort(rng.integers(0, x.size, 5))
        parts = Moments()
        for part in np.split(shuffled, cuts):
            parts.add(part)
        assert (parts.mean(), parts.std()) == (whole.mean(), whole.std())


def test_a_sum_numpy_rounds_differently_is_still_exact() -> None:
    # numpy's pairwise sum of these differs from the exact sum in its last bits
    x = np.array([1.0, 1e16, -1e16, 3.0] * 10)
    m = Moments()
    m.add(x)
    assert m.mean() == 1.0


def test_no_values_and_infinities() -> None:
    m = Moments()
    m.add(np.array([]))
    assert (m.mean(), m.std()) == (0.0, 0.0)
    m.add(np.array([1.0, np.inf]))
    assert m.mean() == math.inf and math.isnan(m.std())
