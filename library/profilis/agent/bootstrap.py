"""``start()``: what the payload's ``sitecustomize`` runs in every Python process of the app.

It reads ``profilis.config`` once, makes the process's ``Agent`` and registers the post-import
hooks (``_hooks``) that patch servers (``_servers``) and frameworks (``_frameworks``) when
they are imported, or at once if they already are. Nothing is built until something needs
it. ``PROFILIS_ENABLED=false`` stops here with nothing patched; a bad setting or any other
error is one log line (``profilis: ...``, on stderr unless the app routes logging) and the
app runs uninstrumented. It never raises.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Final

from profilis.agent import _frameworks, _servers
from profilis.agent._agent import Agent, log
from profilis.agent._hooks import PostImportHooks
from profilis.config import load_config

__all__ = ["PATCHES", "current_agent", "start"]

Patch = Callable[[Agent, ModuleType], None]

#: (instrumentation, module, patch). Instrumentation None: server roles, always on with the
#: agent. ``wsgi`` rides on the gunicorn worker patch, which checks it per app.
PATCHES: Final[tuple[tuple[str | None, str, Patch], ...]] = (
    (None, "gunicorn.arbiter", _servers.patch_gunicorn_arbiter),
    (None, "gunicorn.workers.base", _servers.patch_gunicorn_worker),
    (None, "gunicorn.workers.gasgi", _servers.patch_gunicorn_asgi_worker),
    (None, "uvicorn.server", _servers.patch_uvicorn_server),
    ("flask", "flask.app", _frameworks.patch_flask),
    ("asgi", "starlette.applications", _frameworks.patch_starlette),
    ("asgi", "fastapi.applications", _frameworks.patch_fastapi),
    ("sqlalchemy", "sqlalchemy.engine.base", _frameworks.patch_sqlalchemy),
)

# The module a patch targets -> the instrumentation named in its failure line.
_INSTRUMENTATION_OF: Final = {module: name or module for name, module, _ in PATCHES}


class _State:
    started = False
    agent: Agent | None = None
    hooks: PostImportHooks | None = None


def start(environ: Mapping[str, str] | None = None) -> Agent | None:
    """Start the agent in this process (once); return it, or None when it is off."""
    if _State.started:
        return _State.agent
    _State.started = True
    try:
        config = load_config(environ)
    except Exception as exc:  # ConfigError names the variable and what it accepts
        log.warning("profilis: agent off, the app runs uninstrumented: %s", exc)
        return None
    if not config.enabled:
        return None
    try:
        agent = Agent(config)
        if config.debug:
            _log_debug_to_stderr()
        hooks = PostImportHooks(on_error=functools.partial(_patch_failed, agent))
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=agent.after_fork_in_child)
        _State.agent, _State.hooks = agent, hooks
        for instrumentation, module_name, patch in PATCHES:
            if instrumentation is None or agent.enabled(instrumentation):
                hooks.register(module_name, functools.partial(patch, agent))
        hooks.install()
    except Exception as exc:
        log.warning(
            "profilis: agent off, the app runs uninstrumented: %s: %s", type(exc).__name__, exc
        )
        _State.agent = None
        return None
    log.debug(
        "profilis: agent started in pid %d (exporters: %s; off: %s)",
        os.getpid(),
        ",".join(config.exporters or ("collector",)),
        ",".join(sorted(config.disabled_instrumentations)) or "none",
    )
    return agent


def current_agent() -> Agent | None:
    """The agent ``start`` made in this process, if any."""
    return _State.agent


def _patch_failed(agent: Agent, module_name: str, error: Exception) -> None:
    agent.failed(_INSTRUMENTATION_OF.get(module_name, module_name), error)


def _log_debug_to_stderr() -> None:
    logger = logging.getLogger("profilis")
    logger.setLevel(logging.DEBUG)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False  # or an app that logs to stderr as well shows each line twice
