"""The log-bucketed histograms behind every percentile: stated error bound, exact merging."""

from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from profilis.core._histogram import (
    BUCKETS,
    HIGHEST_NS,
    LOWEST_NS,
    RELATIVE_ERROR,
    Histogram,
    bucket_of,
    percentiles,
)

QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)


def histogram_of(values: list[int]) -> Histogram:
    h = Histogram()
    for value in values:
        h.add(bucket_of(value), value, False)
    return h


def nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


def test_buckets_are_ordered_and_cover_the_range():
    assert bucket_of(0) == 0
    assert bucket_of(LOWEST_NS - 1) == 0
    assert bucket_of(LOWEST_NS) == 1
    assert bucket_of(HIGHEST_NS - 1) == BUCKETS - 2
    assert bucket_of(HIGHEST_NS) == BUCKETS - 1
    values = sorted(random.Random(1).randrange(0, 2 * HIGHEST_NS) for _ in range(20_000))
    indexes = [bucket_of(v) for v in values]
    assert indexes == sorted(indexes)


@given(st.lists(st.integers(min_value=LOWEST_NS, max_value=HIGHEST_NS - 1), min_size=1))
def test_percentiles_are_within_the_stated_relative_error(values):
    estimates = percentiles(histogram_of(values), QUANTILES)
    for q, estimate in zip(QUANTILES, estimates, strict=True):
        truth = nearest_rank(values, q)
        assert estimate is not None
        assert abs(estimate - truth) <= truth * RELATIVE_ERROR * (1 + 1e-9)


@given(st.lists(st.integers(min_value=0, max_value=4 * HIGHEST_NS), min_size=1))
def test_outside_the_range_estimates_stay_within_the_observed_values(values):
    h = histogram_of(values)
    for q, estimate in zip(QUANTILES, percentiles(h, QUANTILES), strict=True):
        truth = nearest_rank(values, q)
        assert estimate is not None
        assert min(values) <= estimate <= max(values)
        if truth < LOWEST_NS:  # the underflow bucket: within 1 us
            assert abs(estimate - truth) <= LOWEST_NS
        elif truth >= HIGHEST_NS:  # the overflow bucket reports the maximum
            assert estimate == max(values)


def test_percentiles_keep_the_order_asked_for_and_an_empty_histogram_has_none():
    h = histogram_of([1_000_000 * i for i in range(1, 101)])
    p99, p50 = percentiles(h, (0.99, 0.5))
    assert p99 is not None and p50 is not None and p99 > p50
    assert percentiles(Histogram(), (0.5, 0.99)) == [None, None]


def test_merging_histograms_equals_counting_everything_in_one():
    rnd = random.Random(7)
    values = [int(rnd.lognormvariate(15, 2)) for _ in range(5_000)]
    parts = [Histogram() for _ in range(6)]
    for i, value in enumerate(values):
        parts[i % 6].add(bucket_of(value), value, i % 10 == 0)
    total = Histogram()
    for part in parts:
        part.merge_into(total)
    whole = histogram_of(values)
    assert list(total.buckets()) == list(whole.buckets())
    assert (total.count, total.sum_ns, total.min_ns, total.max_ns) == (
        len(values),
        sum(values),
        min(values),
        max(values),
    )
    assert total.errors == 500


def test_memory_follows_the_spread_of_latencies_not_the_count():
    narrow = histogram_of([5_000_000 + i for i in range(100_000)])
    assert narrow.nbytes <= 4 * 2  # one decade's sliver: a bucket or two
    wide = histogram_of([LOWEST_NS * 2**i for i in range(27)])
    assert wide.nbytes <= 4 * BUCKETS
