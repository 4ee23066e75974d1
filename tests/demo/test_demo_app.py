"""The demo shop runs the same without Profilis: ``@timed`` is then a decorator doing nothing.

Its image has no Profilis (the operator injects it), so the import must be optional; with the
agent its functions are timed (tests/demo/test_demo_urls.py reads them from the sidecar).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "demo"

# Serves one of each route through Flask's test client and prints what it got.
SCRIPT = """
import json, sys
{block}
import app
client = app.app.test_client()
answers = {{
    "untimed": app.timed is app._untimed,
    "order": client.post("/orders", json={{"item": "tea", "quantity": 10}}).get_json(),
    "report": client.get("/reports/revenue").get_json(),
    "payments": sorted({{client.post("/payments").status_code for _ in range(30)}}),
}}
print(json.dumps(answers))
"""


@pytest.mark.parametrize(
    "block",
    [
        # As in the shop's own image: no Profilis to import at all.
        "sys.modules['profilis'] = None",
        # Profilis importable, but no agent started in this process (not injected).
        "",
    ],
    ids=["profilis-absent", "no-agent"],
)
def test_the_shop_serves_every_route_untimed_without_the_agent(tmp_path: Path, block: str) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROFILIS_")},
        "SHOP_DB": str(tmp_path / "shop.sqlite"),
        "SHOP_PAYMENT_FAILURE_RATE": "0.5",
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(block=block)],
        cwd=APP_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert answers["untimed"] is True
    assert answers["order"]["id"] > 0
    assert answers["report"]["revenue"] > 0
    assert answers["payments"] == [200, 500]  # the provider still fails now and then
