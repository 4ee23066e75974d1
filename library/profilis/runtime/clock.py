"""Clocks: wall-clock timestamps for events, a monotonic clock for durations.

Events carry ``ts_ns`` from the wall clock (so they line up across hosts) and ``dur_ns``
measured with the monotonic clock (so NTP steps never produce negative durations).
"""

from __future__ import annotations

import time

__all__ = ["now_ns", "wall_ns"]

#: Monotonic nanoseconds from an arbitrary origin: use for durations only.
now_ns = time.perf_counter_ns

#: Wall-clock nanoseconds since the Unix epoch: use for event timestamps.
wall_ns = time.time_ns
