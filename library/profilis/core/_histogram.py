"""Latency histograms of fixed, log-spaced buckets: bounded memory, known relative error.

``StatsStore`` (``profilis.core.stats``) keeps one ``Histogram`` per route, function, query
and time slot. Buckets are the same everywhere, so histograms merge by adding counts, and a
percentile read from one is off by at most ``RELATIVE_ERROR`` (never a stored sample).
"""

from __future__ import annotations

import math
import operator
from array import array
from collections.abc import Iterable
from typing import Final

__all__ = [
    "BUCKETS",
    "HIGHEST_NS",
    "LOWEST_NS",
    "RELATIVE_ERROR",
    "Histogram",
    "bucket_of",
    "percentiles",
]

#: Buckets per doubling: bucket bounds grow by 2 ** (1/8), about 9 %.
_PER_OCTAVE: Final = 8
_GROWTH: Final = 2.0 ** (1.0 / _PER_OCTAVE)
#: The worst relative error of a reported value (the bucket's harmonic midpoint): ~4.3 %.
RELATIVE_ERROR: Final = (_GROWTH - 1.0) / (_GROWTH + 1.0)
_LOW_EXP: Final = 10  # 2**10 ns ~ 1 us: shorter durations share one underflow bucket
_HIGH_EXP: Final = 37  # 2**37 ns ~ 137 s: longer ones share one overflow bucket
LOWEST_NS: Final = 2**_LOW_EXP
HIGHEST_NS: Final = 2**_HIGH_EXP
_FIRST: Final = _LOW_EXP * _PER_OCTAVE
#: Bucket 0 is the underflow, BUCKETS - 1 the overflow, the rest are log-spaced.
BUCKETS: Final = (_HIGH_EXP - _LOW_EXP) * _PER_OCTAVE + 2
_OVERFLOW: Final = BUCKETS - 1


def bucket_of(dur_ns: int) -> int:
    """The bucket a duration falls in (0: under ~1 us, BUCKETS - 1: over ~137 s)."""
    if dur_ns < LOWEST_NS:
        return 0
    if dur_ns >= HIGHEST_NS:
        return _OVERFLOW
    # min() guards the float rounding of log2 just below a power of two.
    return min(int(math.log2(dur_ns) * _PER_OCTAVE) - _FIRST + 1, _OVERFLOW - 1)


def _midpoint_ns(index: int) -> float:
    """The value reported for a log-spaced bucket: the one with the smallest worst error."""
    low = math.pow(2.0, (index - 1 + _FIRST) / _PER_OCTAVE)
    high = low * _GROWTH
    return 2.0 * low * high / (low + high)


class Histogram:
    """Counts per bucket plus count, errors, sum, min and max, for one key and time slot.

    The counts live in a compact ``array`` that spans only the buckets seen so far (a route
    with latencies within one decade uses ~30 of the 218 buckets), so a slot's memory follows
    the spread of latencies, up to ~1 KB.
    """

    __slots__ = ("_counts", "_offset", "count", "errors", "max_ns", "min_ns", "sum_ns")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.sum_ns = 0
        self.min_ns = 0
        self.max_ns = 0
        self._offset = 0
        # 32-bit counts: one key would need ~1.2 M events/s for an hour-long slot to overflow.
        self._counts = array("I")

    def add(self, index: int, dur_ns: int, error: bool) -> None:
        """Count ``dur_ns``, whose bucket is ``index`` (``bucket_of``, computed once by the
        caller for all the histograms an event goes into)."""
        counts = self._counts
        position = index - self._offset
        if not counts:
            self._offset, position = index, 0
            counts.append(0)
            self.min_ns = self.max_ns = dur_ns
        elif position < 0:
            counts[0:0] = array("I", bytes(4 * -position))
            self._offset, position = index, 0
        elif position >= len(counts):
            counts.frombytes(bytes(4 * (position - len(counts) + 1)))
        counts[position] += 1
        self.count += 1
        self.sum_ns += dur_ns
        if error:
            self.errors += 1
        if dur_ns < self.min_ns:
            self.min_ns = dur_ns
        elif dur_ns > self.max_ns:
            self.max_ns = dur_ns

    def merge_into(self, total: Histogram) -> None:
        """Add this histogram to ``total`` (used to sum time slots and keys)."""
        if not self.count:
            return
        if not total.count:
            total.min_ns, total.max_ns = self.min_ns, self.max_ns
        else:
            total.min_ns = min(total.min_ns, self.min_ns)
            total.max_ns = max(total.max_ns, self.max_ns)
        total.count += self.count
        total.errors += self.errors
        total.sum_ns += self.sum_ns
        if not total._counts:
            total._offset, total._counts = self._offset, array("I", self._counts)
            return
        low = min(total._offset, self._offset)
        high = max(total._offset + len(total._counts), self._offset + len(self._counts))
        merged = total._counts
        if low != total._offset or high - low != len(merged):
            merged = array("I", bytes(4 * (high - low)))
            start = total._offset - low
            merged[start : start + len(total._counts)] = total._counts
        # map(add) over slices runs the element loop in C: a snapshot merges thousands.
        start = self._offset - low
        stop = start + len(self._counts)
        merged[start:stop] = array("I", map(operator.add, merged[start:stop], self._counts))
        total._offset, total._counts = low, merged

    def copy(self) -> Histogram:
        twin = Histogram()
        self.merge_into(twin)
        return twin

    def buckets(self) -> Iterable[tuple[int, int]]:
        """(bucket index, count) for every non-empty bucket, in order."""
        return ((self._offset + i, c) for i, c in enumerate(self._counts) if c)

    @property
    def nbytes(self) -> int:
        return self._counts.buffer_info()[1] * self._counts.itemsize


def percentiles(histogram: Histogram, quantiles: Iterable[float]) -> list[float | None]:
    """Nanosecond estimates of the given quantiles (nearest rank); None when empty.

    Each estimate is within ``RELATIVE_ERROR`` of the true nearest-rank value (within 1 us
    below ~1 us), and never outside the observed [min, max].
    """
    wanted = list(quantiles)
    results: list[float | None] = [None] * len(wanted)
    if not histogram.count:
        return results
    # One pass over the buckets, answering the quantiles in increasing order.
    order = sorted(range(len(wanted)), key=wanted.__getitem__)
    buckets = iter(histogram.buckets())
    seen = index = 0
    for position in order:
        # The epsilon keeps 0.07 * 100 (7.000000000000001 in floats) at rank 7.
        exact = wanted[position] * histogram.count - 1e-9
        rank = min(histogram.count, max(1, math.ceil(exact)))
        while seen < rank:
            index, count = next(buckets)
            seen += count
        results[position] = _estimate(index, histogram)
    return results


def _estimate(index: int, histogram: Histogram) -> float:
    if index == 0:
        value = LOWEST_NS / 2.0
    elif index == _OVERFLOW:
        value = float(histogram.max_ns)
    else:
        value = _midpoint_ns(index)
    # The true value lies in [min, max], so clamping can only shrink the error.
    return min(max(value, float(histogram.min_ns)), float(histogram.max_ns))
