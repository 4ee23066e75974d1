"""Session fixtures of the agent tests: the payload, installed once, and the app venvs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.support import ASGI_STACK, FLASK_STACK, GREENLET, Venv, build_venv, install_payload


@pytest.fixture(scope="session")
def agent_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("agent")


@pytest.fixture(scope="session")
def payload(agent_root: Path) -> Path:
    """The payload, installed by ``profilis-agent install`` (our venv)."""
    return install_payload(agent_root / "payload")


@pytest.fixture(scope="session")
def flask_venv(agent_root: Path) -> Venv:
    """Flask, gunicorn and SQLAlchemy: no profilis."""
    return build_venv(agent_root / "venv-flask", FLASK_STACK)


@pytest.fixture(scope="session")
def asgi_venv(agent_root: Path) -> Venv:
    """FastAPI, Starlette, uvicorn, gunicorn and SQLAlchemy: no profilis."""
    return build_venv(agent_root / "venv-asgi", (*ASGI_STACK, GREENLET))
