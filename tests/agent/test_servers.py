"""The agent under real servers: apps from fresh venvs, events into a real sidecar.

Each app runs from a virtualenv holding only its own dependencies, with the payload (installed
by ``profilis-agent install``) first on PYTHONPATH and PROFILIS_* set, nothing else. A real
sidecar receives the events; its /metrics must show the requests per route template, the
database queries, and one live worker per worker process: the masters (gunicorn's, uvicorn's
``--workers`` supervisor) never count.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.agent.support import (
    APP_SITE_DIR,
    APPS_DIR,
    Venv,
    app_env,
    children_of,
    create_database,
    fire,
    profilis_lines,
    read_jsonl_events,
)
from tests.sidecar.helpers import (
    Families,
    running_sidecar,
    scrape,
    short_dir,
    status,
    value,
    wait_for,
)
from tests.support.processes import RunningProcess, free_port, run_process

pytestmark = pytest.mark.slow

ROUNDS = 10  # each round: /hello, one route with a parameter and a query, and a 404
SERVICE = "shop"


@dataclass
class Deployment:
    """An app server and its sidecar, as in one pod."""

    server: RunningProcess
    url: str
    sidecar_port: int
    log_dir: Path

    def workers(self) -> set[int]:
        return {w["pid"] for w in status(self.sidecar_port)["workers"]}

    def wait_for_workers(self, count: int) -> set[int]:
        """The sidecar's live workers, once there are ``count`` (heartbeats: before any load)."""
        found = wait_for(self.workers, lambda pids: len(pids) >= count, timeout=30)
        assert len(found) == count, f"{self.server.output()[-3000:]}"
        return found

    def wait_for_requests(self, count: int) -> Families:
        return wait_for(
            lambda: scrape(self.sidecar_port),
            lambda s: value(s, "profilis_http_requests_total") >= count,
            timeout=15,
        )


@contextmanager
def deployed(
    argv: Sequence[str],
    tmp_path: Path,
    payload: Path,
    *,
    port: int,
    pythonpath: Sequence[Path] = (APPS_DIR,),
    **settings: str,
) -> Iterator[Deployment]:
    """A sidecar, then the app server with the agent's environment; both stopped after."""
    database = create_database(tmp_path / "app.db")
    log_dir = tmp_path / "events"
    with short_dir() as sockets, running_sidecar(sockets / "c.sock") as sidecar:
        env = app_env(
            payload,
            *pythonpath,
            PROFILIS_COLLECTOR_ADDRESS=f"unix://{sockets}/c.sock",
            PROFILIS_SERVICE_NAME=SERVICE,
            PROFILIS_EXPORTERS="collector,jsonl",
            PROFILIS_LOG_DIR=str(log_dir),
            PROFILIS_FLUSH_INTERVAL="0.05",
            AGENT_TEST_DB=str(database),
            **settings,
        )
        with run_process(argv, env=env, cwd=APPS_DIR, port=port) as server:
            yield Deployment(server, f"http://127.0.0.1:{port}", sidecar.port or 0, log_dir)


def gunicorn(venv: Venv, port: int, app: str, *options: str) -> list[str]:
    return [
        venv.bin("gunicorn"),
        *("--bind", f"127.0.0.1:{port}", "--graceful-timeout", "2"),
        *options,
        app,
    ]


def one_round_paths(rounds: int, param_route: str) -> list[str]:
    paths = []
    for n in range(rounds):
        paths += ["/hello", f"{param_route}/{1 + n % 2 * 6}", f"/missing/{n}"]
    return paths


def assert_served(
    deployment: Deployment, worker_pids: set[int], param_route: str, param_template: str
) -> Families:
    """Send the rounds; check /metrics per route template, the DB queries, the workers."""
    responses = fire(deployment.url, one_round_paths(ROUNDS, param_route))
    assert [r.status_code for r in responses] == [200, 200, 404] * ROUNDS
    serving = {r.json()["pid"] for r in responses if r.status_code == 200}
    samples = deployment.wait_for_requests(3 * ROUNDS)

    def requests(route: str, code: str) -> float:
        return value(
            samples, "profilis_http_requests_total", service=SERVICE, route=route, status=code
        )

    assert requests("/hello", "200") == ROUNDS
    assert requests(param_template, "200") == ROUNDS
    assert requests("<unmatched>", "404") == ROUNDS
    assert value(samples, "profilis_http_requests_total") == 3 * ROUNDS
    assert value(samples, "profilis_db_queries_total", db_vendor="sqlite") == ROUNDS
    assert value(samples, "profilis_sidecar_workers") == len(worker_pids)
    assert {int(labels["worker"]) for labels, _ in samples["profilis_queue_depth"]} == worker_pids
    assert serving <= worker_pids
    assert value(samples, "profilis_events_dropped_total") == 0
    return samples


def assert_db_events_join_their_request(deployment: Deployment, path: str) -> None:
    """At the event level (JSONL exporter): a request's queries carry its trace id."""
    trace_id = secrets.token_hex(16)
    headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    (response,) = fire(deployment.url, [path], headers=headers)
    assert response.status_code == 200

    def of_trace() -> list[dict[str, object]]:
        return [e for e in read_jsonl_events(deployment.log_dir) if e.get("trace_id") == trace_id]

    events = wait_for(of_trace, lambda found: len(found) >= 2, timeout=10)
    kinds = sorted(str(e["kind"]) for e in events)
    assert kinds == ["DB", "HTTP"], events
    http = next(e for e in events if e["kind"] == "HTTP")
    db = next(e for e in events if e["kind"] == "DB")
    assert db["span_id"] == http["span_id"]  # the query ran inside the request's span
    assert db["query"] == "SELECT name FROM users WHERE id = ?"
    assert db["db_vendor"] == "sqlite"


# --------------------------------------------------------------------------- gunicorn + Flask
@pytest.mark.parametrize("preload", [False, True], ids=["import-in-workers", "preload"])
def test_flask_and_sqlalchemy_under_gunicorn_with_4_sync_workers(
    preload: bool, flask_venv: Venv, payload: Path, tmp_path: Path
) -> None:
    port = free_port()
    options = ["--workers", "4", *(["--preload"] if preload else [])]
    argv = gunicorn(flask_venv, port, "agent_flask_app:app", *options)
    with deployed(argv, tmp_path, payload, port=port) as deployment:
        workers = deployment.wait_for_workers(4)
        master = deployment.server.pid
        assert workers == children_of(master)  # every worker, and the master is not one
        assert_served(deployment, workers, "/users", "/users/<int:user_id>")
        assert_db_events_join_their_request(deployment, "/users/7")
        assert profilis_lines(deployment.server.output()) == []


def test_flask_under_gunicorn_gthread_with_the_apps_own_sitecustomize(
    flask_venv: Venv, payload: Path, tmp_path: Path
) -> None:
    port = free_port()
    argv = gunicorn(
        flask_venv, port, "agent_flask_app:app", "--workers", "2", "--threads", "4", "--preload"
    )
    # The image's PYTHONPATH had the app's directory with its sitecustomize; the operator
    # prepends the payload, whose sitecustomize must run the app's as well.
    with deployed(argv, tmp_path, payload, port=port, pythonpath=(APPS_DIR, APP_SITE_DIR)) as dep:
        workers = dep.wait_for_workers(2)
        assert workers == children_of(dep.server.pid)
        assert_served(dep, workers, "/users", "/users/<int:user_id>")
        (inside,) = fire(dep.url, ["/introspect"])
        report = inside.json()
        assert report["sitecustomize"] == str(APP_SITE_DIR / "sitecustomize.py")
        assert report["app_sitecustomize_pid"] == dep.server.pid  # ran once, in the master
        assert "profilis-agent-collector" in report["threads"]
        assert "profilis-collector-heartbeat" in report["threads"]


def test_bare_wsgi_app_under_gunicorn(flask_venv: Venv, payload: Path, tmp_path: Path) -> None:
    port = free_port()
    argv = gunicorn(flask_venv, port, "agent_wsgi_app:app", "--workers", "2")
    with deployed(argv, tmp_path, payload, port=port) as deployment:
        workers = deployment.wait_for_workers(2)
        responses = fire(deployment.url, ["/hello", "/nope"] * ROUNDS)
        assert [r.status_code for r in responses] == [200, 404] * ROUNDS
        samples = deployment.wait_for_requests(2 * ROUNDS)
    # No framework, so no route templates: never the raw path either.
    assert value(samples, "profilis_http_requests_total", route="<unmatched>", status="200") == (
        ROUNDS
    )
    assert value(samples, "profilis_http_requests_total", route="<unmatched>", status="404") == (
        ROUNDS
    )
    assert value(samples, "profilis_sidecar_workers") == len(workers) == 2


def test_flask_inside_a_plain_wsgi_middleware_is_timed_once(
    flask_venv: Venv, payload: Path, tmp_path: Path
) -> None:
    port = free_port()
    argv = gunicorn(flask_venv, port, "agent_wrapped_app:app", "--workers", "1")
    with deployed(argv, tmp_path, payload, port=port) as deployment:
        workers = deployment.wait_for_workers(1)
        assert_served(deployment, workers, "/users", "/users/<int:user_id>")


# --------------------------------------------------------------------------- FastAPI
def test_fastapi_under_uvicorn_with_2_workers(
    asgi_venv: Venv, payload: Path, tmp_path: Path
) -> None:
    port = free_port()
    argv = [
        asgi_venv.bin("uvicorn"),
        "agent_fastapi_app:app",
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--no-access-log"),
    ]
    with deployed(argv, tmp_path, payload, port=port) as deployment:
        workers = deployment.wait_for_workers(2)
        # Spawned, not forked: each worker ran the bootstrap itself. The supervisor (and the
        # resource tracker multiprocessing starts) never report.
        assert deployment.server.pid not in workers
        assert workers <= children_of(deployment.server.pid)
        assert_served(deployment, workers, "/items", "/items/{item_id}")
        assert_db_events_join_their_request(deployment, "/items/7")


def test_fastapi_under_gunicorn_with_uvicorn_workers(
    asgi_venv: Venv, payload: Path, tmp_path: Path
) -> None:
    port = free_port()
    argv = gunicorn(
        asgi_venv,
        port,
        "agent_fastapi_app:app",
        "--workers",
        "2",
        "-k",
        "uvicorn.workers.UvicornWorker",
    )
    with deployed(argv, tmp_path, payload, port=port) as deployment:
        workers = deployment.wait_for_workers(2)
        assert workers == children_of(deployment.server.pid)
        assert_served(deployment, workers, "/items", "/items/{item_id}")


# --------------------------------------------------------------------------- failing safe
def test_a_bad_setting_logs_one_line_and_the_app_serves_uninstrumented(
    flask_venv: Venv, payload: Path, tmp_path: Path
) -> None:
    port = free_port()
    argv = gunicorn(flask_venv, port, "agent_flask_app:app", "--workers", "2")
    with deployed(argv, tmp_path, payload, port=port, PROFILIS_QUEUE_SIZE="lots") as deployment:
        responses = fire(deployment.url, one_round_paths(3, "/users"))
        assert [r.status_code for r in responses] == [200, 200, 404] * 3
        (inside,) = fire(deployment.url, ["/introspect"])
        # A heartbeat would have come at once; give a batch time to arrive all the same.
        idle = wait_for(lambda: scrape(deployment.sidecar_port), lambda s: False, timeout=1.0)
        output = deployment.server.output()
    assert profilis_lines(output) == [
        "profilis: agent off, the app runs uninstrumented: "
        "PROFILIS_QUEUE_SIZE must be an integer in [1, 10000000], got 'lots'"
    ]
    assert not [name for name in inside.json()["threads"] if name.startswith("profilis")]
    assert value(idle, "profilis_sidecar_workers") == 0
    assert value(idle, "profilis_http_requests_total") == 0
