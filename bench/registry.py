"""The list of benchmark cases, and the settings and result types they share.

A case is a name, a table label, the interpreter it runs in (our venv or the peer's) and a
``module:function`` reference that ``bench.worker`` resolves inside a fresh subprocess, so
this module stays standard-library-only and importable in both venvs. To add a row, write
a function ``(Settings) -> CaseResult`` in a ``bench.cases_*`` module and list it here.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Literal

__all__ = ["CASES", "Case", "CaseResult", "Settings", "select_cases"]

Interpreter = Literal["ours", "peer"]
Unit = Literal["ns/op", "events/s"]


@dataclass(frozen=True)
class Settings:
    """How hard to measure: ``full`` for ``make bench``, ``quick`` for a smoke run."""

    quick: bool = False
    #: Repetitions per latency measurement; the median is reported.
    repeat: int = 7
    #: Target duration of one repetition, in seconds.
    rep_s: float = 0.05
    #: Repetitions per drain measurement (each one a fresh collector).
    drain_repeat: int = 3
    #: Multiplies every drain case's event count (the quick run uses a tenth).
    drain_scale: float = 1.0

    @classmethod
    def for_mode(cls, quick: bool) -> Settings:
        if quick:
            return cls(quick=True, repeat=3, rep_s=0.01, drain_repeat=1, drain_scale=0.1)
        return cls()


@dataclass
class CaseResult:
    """One row: the headline ``value`` (a median) in ``unit``, its repetitions, and context.

    ``info`` holds case-specific facts (drops, events, component timings); the report may
    show some of them, the JSON file keeps all of them.
    """

    value: float
    unit: Unit
    reps: list[float]
    info: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Case:
    """A row of the table. ``runner`` is ``"module:function"`` under ``bench``."""

    name: str
    label: str
    interpreter: Interpreter
    runner: str


CASES: tuple[Case, ...] = (
    Case("floor", "floor (clock + dict + deque.append)", "ours", "cases_baseline:floor"),
    Case("ours_emit_http", "ours emit_http", "ours", "cases_ours:emit_http"),
    Case("ours_emit_fn", "ours emit_fn", "ours", "cases_ours:emit_fn"),
    Case("ours_emit_db", "ours emit_db", "ours", "cases_ours:emit_db"),
    Case("ours_decorator", "ours @profile overhead", "ours", "cases_ours:decorator"),
    Case("peer_emit_req", "peer 1.0.0 emit_req", "peer", "cases_peer:emit_req"),
    Case("peer_decorator", "peer 1.0.0 @profile_function overhead", "peer", "cases_peer:decorator"),
    Case(
        "handrolled_decorator",
        "hand-rolled perf_counter_ns wrapper overhead",
        "ours",
        "cases_baseline:handrolled_decorator",
    ),
    Case("otel_span", "OTel SDK start_span().end()", "ours", "cases_baseline:otel_span"),
    Case(
        "prometheus_observe",
        "prometheus_client labels().observe()",
        "ours",
        "cases_baseline:prometheus_observe",
    ),
    Case("drain_ours", "drain ours", "ours", "cases_ours:drain"),
    Case("drain_peer", "drain peer 1.0.0", "peer", "cases_peer:drain"),
    Case("jsonl_ours", "JSONL export ours", "ours", "cases_exporters:jsonl_export"),
    Case("jsonl_peer", "JSONL export peer 1.0.0", "peer", "cases_exporters:jsonl_export_peer"),
    Case("flask_hooks", "Flask no-op before/after hooks", "ours", "cases_adapters:flask_hooks"),
    Case("flask_ours", "ours ProfilisFlask overhead", "ours", "cases_adapters:flask_ours"),
    Case("flask_peer", "peer 1.0.0 ProfilisFlask overhead", "peer", "cases_adapters:flask_peer"),
    Case("asgi_ours", "ours ProfilisASGI overhead (Starlette)", "ours", "cases_adapters:asgi_ours"),
    Case("asgi_peer", "peer 1.0.0 ASGI middleware overhead", "peer", "cases_adapters:asgi_peer"),
    Case(
        "asgi_timing",
        "timing-only ASGI middleware overhead",
        "ours",
        "cases_adapters:asgi_timing",
    ),
    Case(
        "sidecar_ingest",
        "sidecar ingest, 4 agents flooding (1 core)",
        "ours",
        "cases_sidecar:ingest_capacity",
    ),
    Case(
        "sidecar_paced",
        "sidecar ingest, 4 agents at 600k/s (1 core)",
        "ours",
        "cases_sidecar:ingest_paced",
    ),
    Case(
        "agent_request",
        "agent per-request overhead, gunicorn + Flask",
        "ours",
        "cases_agent:request_overhead",
    ),
    Case(
        "operator_webhook",
        "webhook round trip p99, 20 concurrent HTTPS",
        "ours",
        "cases_operator:webhook_latency",
    ),
    Case(
        "kopf_webhook",
        "kopf @on.mutate round trip p99, same inject",
        "ours",
        "cases_operator:kopf_webhook_latency",
    ),
    Case(
        "sidecar_send",
        "agent send, one 128-event batch at 500/s (CPU)",
        "ours",
        "cases_sidecar:agent_send",
    ),
)


def select_cases(patterns: Iterable[str] | None) -> list[Case]:
    """The cases whose names match any of ``patterns`` (globs allowed), in table order."""
    if patterns is None:
        return list(CASES)
    wanted = [p.strip() for p in patterns if p.strip()]
    unknown = [p for p in wanted if not any(fnmatch.fnmatchcase(c.name, p) for c in CASES)]
    if unknown:
        names = ", ".join(c.name for c in CASES)
        raise ValueError(f"unknown case(s) {', '.join(unknown)}; known cases: {names}")
    return [c for c in CASES if any(fnmatch.fnmatchcase(c.name, p) for p in wanted)]
