"""Dashboard.respond, the one handler behind every mount: paths, headers, the token check."""

from __future__ import annotations

import hmac
import json
import re
from importlib import resources
from typing import Any

import pytest

from profilis import ConfigError
from profilis.core.stats import StatsStore
from profilis.ui import Dashboard, UiResponse, _auth

TOKEN = "s3cret-tøken"  # non-ASCII on purpose: compared as UTF-8 bytes


def respond(dashboard: Dashboard, path: str, headers: dict[str, str] | None = None, **kw: Any):
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    return dashboard.respond(
        kw.pop("method", "GET"), path, header=lambda name: lowered.get(name.lower()), **kw
    )


@pytest.fixture
def open_dashboard() -> Dashboard:
    return Dashboard(StatsStore())


@pytest.fixture
def guarded() -> Dashboard:
    return Dashboard(StatsStore(), auth_token=TOKEN)


def assert_common_headers(response: UiResponse) -> None:
    assert response.header("Cache-Control") == "no-store"
    assert response.header("X-Content-Type-Options") == "nosniff"
    assert response.header("Referrer-Policy") == "no-referrer"
    assert response.header("Content-Length") is not None


@pytest.mark.parametrize("path", ["", "/", "/index.html"])
def test_the_page_points_at_its_data_and_assets_under_the_mount(open_dashboard, path):
    response = respond(open_dashboard, path, base_path="/ops/_profilis/")
    assert response.status == 200
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    assert_common_headers(response)
    page = response.body.decode()
    assert 'data-metrics-url="/ops/_profilis/metrics.json"' in page
    assert 'src="/ops/_profilis/assets/dashboard.js"' in page
    assert "script-src 'self'" in (response.header("Content-Security-Policy") or "")
    assert "{{" not in page


def test_metrics_json_is_the_snapshot(open_dashboard):
    open_dashboard.stats([{"kind": "HTTP", "dur_ns": 10, "route": "/a", "status": 200}])  # type: ignore[operator]
    response = respond(open_dashboard, "/metrics.json")
    assert response.status == 200
    assert response.header("Content-Type") == "application/json"
    assert_common_headers(response)
    document = json.loads(response.body)
    assert document["schema_version"] == "1"
    assert [row["route"] for row in document["routes"]] == ["/a"]


def test_assets_unknown_paths_head_and_other_methods(open_dashboard):
    script = respond(open_dashboard, "/assets/dashboard.js")
    assert (script.status, script.header("Content-Type")) == (200, "text/javascript; charset=utf-8")
    assert respond(open_dashboard, "/assets/dashboard.css").status == 200
    assert respond(open_dashboard, "/assets/../stats.py").status == 404
    assert respond(open_dashboard, "/nope").status == 404
    head = respond(open_dashboard, "/", method="HEAD")
    assert (head.status, head.body) == (200, b"")
    assert int(head.header("Content-Length") or 0) > 0
    post = respond(open_dashboard, "/metrics.json", method="POST")
    assert (post.status, post.header("Allow")) == (405, "GET, HEAD")
    assert_common_headers(post)


def test_a_hostile_mount_path_cannot_inject_markup(open_dashboard):
    page = respond(open_dashboard, "/", base_path='/x"><script>alert(1)</script>').body.decode()
    assert "<script>alert" not in page
    assert "&quot;&gt;&lt;script&gt;" in page


@pytest.mark.parametrize("path", ["/", "/metrics.json"])
def test_without_the_token_the_page_and_data_are_refused(guarded, path):
    for headers, query in [
        ({}, ""),
        ({"Authorization": "Bearer wrong"}, ""),
        ({"Authorization": f"Basic {TOKEN}"}, ""),  # only the Bearer scheme carries it
        ({"X-Profilis-Token": TOKEN + "x"}, ""),
        ({}, "token=" + TOKEN[:-1]),
    ]:
        response = respond(guarded, path, headers, query_string=query)
        assert response.status == 401, (headers, query)
        assert response.header("WWW-Authenticate") == 'Bearer realm="profilis"'
        assert_common_headers(response)
        assert b"schema_version" not in response.body


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"Authorization": f"Bearer {TOKEN}"}, ""),
        ({"authorization": f"bearer  {TOKEN} "}, ""),
        ({"X-Profilis-Token": TOKEN}, ""),
        ({}, "token=s3cret-t%C3%B8ken"),
        ({"Authorization": "Bearer stale"}, "token=s3cret-t%C3%B8ken"),  # any one valid is enough
    ],
)
def test_the_right_token_in_any_of_the_three_places_is_accepted(guarded, headers, query):
    assert respond(guarded, "/metrics.json", headers, query_string=query).status == 200
    assert respond(guarded, "/", headers, query_string=query).status == 200


def test_the_assets_hold_no_data_and_need_no_token(guarded):
    assert respond(guarded, "/assets/dashboard.js").status == 200


def test_the_token_is_compared_in_constant_time(guarded, monkeypatch):
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(_auth.hmac, "compare_digest", spy)
    assert respond(guarded, "/", {"X-Profilis-Token": "nope"}).status == 401
    assert respond(guarded, "/", {"X-Profilis-Token": TOKEN}).status == 200
    expected = TOKEN.encode()
    assert calls == [(b"nope", expected), (expected, expected)]


@pytest.mark.parametrize("token", ["", "   ", 123])
def test_an_empty_or_non_string_token_is_a_configuration_error(token):
    with pytest.raises(ConfigError, match="ui_auth_token"):
        Dashboard(StatsStore(), auth_token=token)


def test_stats_must_have_a_snapshot():
    with pytest.raises(TypeError):
        Dashboard(object())  # type: ignore[arg-type]


def test_the_page_loads_nothing_from_elsewhere():
    static = resources.files("profilis.ui") / "static"
    names = sorted(p.name for p in static.iterdir() if p.is_file())
    assert names == ["dashboard.css", "dashboard.js", "index.html"]
    for name in names:
        text = (static / name).read_text()
        # The only absolute URL is the SVG namespace, which is a name, not a request.
        urls = set(re.findall(r"https?://[^\s\"')]+", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)
        assert "@import" not in text
    script = (static / "dashboard.js").read_text()
    assert "innerHTML" not in script  # server data is inserted as text only
