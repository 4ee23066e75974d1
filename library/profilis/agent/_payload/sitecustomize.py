"""Profilis agent bootstrap: Python runs this at start-up (``site`` imports ``sitecustomize``).

``profilis-agent install DIR`` puts it in DIR beside the ``profilis`` package; putting DIR
first on ``PYTHONPATH`` is the whole installation. It starts the agent
(``profilis.agent.start``, which never raises), then runs the ``sitecustomize`` it hides (the
app's or the image's, later on ``sys.path``) as Python would have, so both run. If the app
has a ``profilis`` of its own, DIR leaves ``sys.path`` so as not to hide it, and the app's copy
is used. Standard library only: nothing here may keep the app from starting.
"""

import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))


def _is_here(entry: str) -> bool:
    try:
        return os.path.realpath(entry or os.getcwd()) == _HERE
    except (OSError, ValueError):
        return False


def _entries_after_here() -> list[str]:
    """``sys.path`` after this directory: where Python would have looked had we not been first."""
    entries = list(sys.path)
    ours = [index for index, entry in enumerate(entries) if _is_here(entry)]
    rest = entries[ours[0] + 1 :] if ours else entries
    return [entry for entry in rest if not _is_here(entry)]


def _start_profilis_agent(later: list[str]) -> None:
    if tuple(sys.version_info[:2]) < (3, 10):
        sys.stderr.write("profilis: the agent needs Python 3.10+; the app runs uninstrumented\n")
        return
    whose = ""
    if importlib.machinery.PathFinder.find_spec("profilis", later) is not None:
        # The app ships profilis itself: ours must not shadow it, so we step off the path.
        sys.path[:] = [entry for entry in sys.path if not _is_here(entry)]
        whose = " (the app's own profilis)"
    try:
        from profilis.agent import start
    except Exception as exc:  # a payload that cannot load here must not stop the app
        sys.stderr.write(
            f"profilis: agent off, the app runs uninstrumented: cannot load it{whose}: {exc!r}\n"
        )
        return
    start()


def _run_hidden_sitecustomize(later: list[str]) -> None:
    """Run the ``sitecustomize`` that Python would have run without this one, if any."""
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", later)
    if spec is None or spec.loader is None:
        return
    if spec.origin and os.path.realpath(spec.origin) == os.path.realpath(__file__):
        return
    module = importlib.util.module_from_spec(spec)
    # Under its own name, as ``import sitecustomize`` would have run it: code that looks
    # itself up in sys.modules, or imports sitecustomize later, finds the app's module.
    sys.modules["sitecustomize"] = module
    # An exception goes up to ``site``, which reports it as it would have without us.
    spec.loader.exec_module(module)


_later = _entries_after_here()
_start_profilis_agent(_later)
_run_hidden_sitecustomize(_later)
