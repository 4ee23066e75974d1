"""Running the test apps under real servers, and talking to them as a client would.

Each server gets its own temp directories (events, flags) and SQLite file; requests carry a
fresh ``traceparent`` so a test finds its own events among everything the server wrote.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tests.adapters.apps.sink import wait_for_events
from tests.support.processes import RunningProcess, free_port, run_process

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Bound on every client read: a buffered stream shows up as a timeout, not a hang.
CLIENT_TIMEOUT_S = 5.0


@dataclass
class Server:
    url: str
    events_dir: Path
    flags_dir: Path
    process: RunningProcess

    def events_of(
        self, trace_id: str, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """The events of one trace, once ``count`` of them have been exported."""
        return wait_for_events(
            self.events_dir, lambda e: e.get("trace_id") == trace_id, count, timeout
        )

    def flag(self, name: str) -> None:
        (self.flags_dir / name).touch()


def new_traceparent() -> tuple[str, str, str]:
    """A ``traceparent`` header for a fresh trace: (header, trace_id, caller's span id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def _create_database(path: Path) -> None:
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"))
        conn.execute(text("INSERT INTO users (id, name) VALUES (1, 'ada'), (7, 'grace')"))
    engine.dispose()


@contextmanager
def serve(root: Path, argv_for_port: Callable[[int], Sequence[str]]) -> Iterator[Server]:
    """Start ``argv_for_port(port)`` from the repository root with the test app's settings."""
    events_dir, flags_dir = root / "events", root / "flags"
    events_dir.mkdir()
    flags_dir.mkdir()
    database = root / "app.db"
    _create_database(database)
    port = free_port()
    argv = argv_for_port(port)
    env = {
        "PROFILIS_TEST_EVENTS_DIR": str(events_dir),
        "PROFILIS_TEST_FLAGS_DIR": str(flags_dir),
        "PROFILIS_TEST_DB": str(database),
        "PYTHONPATH": str(REPO_ROOT),
    }
    with run_process(argv, env=env, cwd=REPO_ROOT, port=port, ready_timeout=30) as process:
        yield Server(f"http://127.0.0.1:{port}", events_dir, flags_dir, process)


def gunicorn_argv(port: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn",
        "--workers", "2",
        "--preload",  # import once, then fork: the collector must come back to life per worker
        "--bind", f"127.0.0.1:{port}",
        "--graceful-timeout", "2",
        "tests.adapters.apps.flask_app:app",
    ]  # fmt: skip


def uvicorn_argv(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn",
        "tests.adapters.apps.fastapi_app:app",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--lifespan", "on",
        "--no-access-log",
    ]  # fmt: skip


def by_kind(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {"HTTP": [], "FN": [], "DB": []}
    for event in events:
        kinds[event["kind"]].append(event)
    return kinds
