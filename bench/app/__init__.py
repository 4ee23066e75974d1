"""The whole-app comparison (``make bench-app``, issue 19): real servers under wrk, plain
against Profilis 2's zero-code agent + sidecar and the peers, in interleaved paired rounds.

Modules: ``variants`` (stacks and variants), ``venvs`` (the peers' pinned venvs under .bench),
``procs`` (processes and /proc CPU), ``load`` (wrk or a Python loop), ``runner`` (rounds and
checks), ``report`` (figures, Markdown), ``chart`` (the PNG, run in its own venv); ``served/``
holds the apps the servers import. Standard library only at import time.
"""
